"""SCIM errors (RFC 7644 §3.12): raised anywhere below a SCIM view, answered as an Error body."""

from __future__ import annotations

import json

from django.http import HttpResponse

from provisioning.schema import ERROR

CONTENT_TYPE = "application/scim+json"


class ScimError(Exception):
    """A request the endpoint refuses: HTTP status, SCIM `scimType` and a message for a person."""

    def __init__(self, status: int, detail: str, scim_type: str = "", headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}
        # True for a refusal that is not written to the request log (a flood past its limit).
        self.quiet = False

    def response(self) -> HttpResponse:
        body = {"schemas": [ERROR], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        response = HttpResponse(json.dumps(body), status=self.status, content_type=CONTENT_TYPE)
        for name, value in self.headers.items():
            response[name] = value
        return response


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def not_found(detail: str) -> ScimError:
    return ScimError(404, detail)
