"""Bệnh Án: an electronic medical record for small public clinics."""

__version__ = "0.1.0"
