"""OCI error bodies: ``{"code": ..., "message": ...}`` with ``content-type: application/json``."""

from __future__ import annotations

STANDARD = {
    400: ("InvalidParameter", "Invalid parameter."),
    401: ("NotAuthenticated", "The required information to complete authentication was not provided or was incorrect."),
    403: ("NotAuthorized", "Not authorized to perform this operation."),
    404: ("NotAuthorizedOrNotFound", "Authorization failed or requested resource not found."),
    405: ("MethodNotAllowed", "The method is not allowed on this resource."),
    409: ("IncorrectState", "The resource is in a conflicting state."),
    413: ("PayloadTooLarge", "The request body is too large."),
    429: ("TooManyRequests", "Too many requests for the tenancy. Please retry after some time."),
    500: ("InternalServerError", "Internal server error."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is currently unavailable. Please retry after some time."),
    504: ("GatewayTimeout", "The service timed out."),
}
NOT_FOUND_MESSAGE = STANDARD[404][1]


class ApiError(Exception):
    """Raised by handlers; the app turns it into an error response and a ledger entry."""

    def __init__(self, status: int, code: str, message: str, *, openai: bool = False, param: str | None = None,
                 headers: list | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.openai = openai
        self.param = param
        self.headers = headers or []

    def body(self) -> dict:
        if self.openai:
            kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                    429: "rate_limit_error"}.get(self.status, "server_error")
            return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return {"code": self.code, "message": self.message}


def standard(status: int, message: str | None = None, code: str | None = None) -> ApiError:
    default_code, default_message = STANDARD.get(status, (str(status), f"HTTP {status}"))
    return ApiError(status, code or default_code, message or default_message)


def bad_request(settings: dict, message: str) -> ApiError:
    return ApiError(400, settings["bad_request_code"], message)


def not_found(settings: dict, message: str = NOT_FOUND_MESSAGE) -> ApiError:
    return ApiError(404, settings["not_found_code"], message)
