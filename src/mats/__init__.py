"""MATS."""
