"""Domain errors; the app maps each to its HTTP status with a ``{"detail": ...}`` body."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500


class NotFoundError(ServiceError):
    status_code = 404


class ConflictError(ServiceError):
    status_code = 409


class DomainValidationError(ServiceError):
    """Well-formed input that breaks a business rule (same 422 as request validation)."""

    status_code = 422
