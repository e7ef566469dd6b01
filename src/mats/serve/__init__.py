"""`mats serve`: the HTTP API and the web page. Import `create_app` from mats.serve.app (this
package's import pulls in FastAPI; the CLI imports it only for the serve verb)."""

from mats.serve.config import ServeConfig

__all__ = ["ServeConfig"]
