"""The SCIM 2.0 endpoint (RFC 7644) under /scim/v2/: discovery and Users.

Function views like the rest of the portal; `scim_view` does what every SCIM request shares:
the bearer token, its scope and rate, the body size limit, SCIM error bodies, and one row in the
request log. Groups are not served (discovery says so).

scim2-server is not used: scim2-models already parses, validates, patches and serialises, and
what scim2-server adds on top (routing and a storage behind it) is what Django's views and the
ORM do here, where every write must go through members.services (the row lock, the one
deactivation event, the audit row) inside one database transaction.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError as PydanticValidationError
from scim2_models import Context, PatchOp

from assetsonar.audit import client_ip
from provisioning import schema
from provisioning.auth import (
    ScimActor,
    authenticate,
    require_write,
    throttle,
    throttle_unauthenticated,
)
from provisioning.errors import (
    CONTENT_TYPE,
    ScimError,
    invalid_syntax,
    invalid_value,
    not_found,
)
from provisioning.filters import filter_to_q
from provisioning.resources import (
    check_email_values,
    describe_validation_error,
    parse_user,
    render,
    response_parameters,
    user_version,
)
from provisioning.selectors import scim_user_get, scim_users
from provisioning.services import (
    scim_request_record,
    scim_token_touch,
    scim_user_create,
    scim_user_hide,
    scim_user_patch,
    scim_user_update,
)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
logger = logging.getLogger(__name__)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data), status=status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def scim_view(*methods: str, read_only_post: bool = False):
    """Authenticate, throttle, check the scope, answer errors as SCIM errors, log the request."""

    def decorator(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            started = time.monotonic()
            request.scim_request_id = uuid.uuid4().hex
            request.scim_token = None
            request.scim_member = None
            quiet = False
            try:
                try:
                    token = authenticate(request)
                except ScimError as exc:
                    raise throttle_unauthenticated(request, exc) from None
                request.scim_token = token
                throttle(token)
                if request.method not in methods:
                    raise ScimError(405, f"{request.method} is not allowed here.")
                if request.method in WRITE_METHODS and not (
                    read_only_post and request.method == "POST"
                ):
                    require_write(token)
                request.scim_actor = ScimActor(token=token, request_id=request.scim_request_id)
                response = view(request, *args, **kwargs)
                failure = ("", "")
            except ScimError as exc:
                response = exc.response()
                failure = (exc.scim_type, exc.detail)
                quiet = exc.quiet
            except Exception:
                # A bug, not the client's fault: logged with its traceback, answered as a SCIM
                # error the identity provider can show, and kept in the request log.
                logger.exception("SCIM request %s failed", request.scim_request_id)
                error = ScimError(
                    500,
                    f"The portal could not process this request (request "
                    f"{request.scim_request_id}); its administrator can find it in the log.",
                )
                response = error.response()
                failure = ("", error.detail)
            response["X-Request-ID"] = request.scim_request_id
            if not quiet:
                _log(request, response, failure, started)
            return response

        return wrapped

    return decorator


def _log(request, response, failure, started) -> None:
    token = request.scim_token
    ip = client_ip(request)
    scim_request_record(
        token=token,
        request_id=request.scim_request_id,
        method=request.method,
        path=unquote(request.get_full_path()),
        status=response.status_code,
        scim_type=failure[0],
        detail=failure[1],
        member=request.scim_member,
        ip_address=ip,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    if token is not None and token.revoked_at is None:
        scim_token_touch(token=token, ip=ip)


def _body(request: HttpRequest) -> Any:
    limit = settings.SCIM_MAX_BODY_BYTES
    too_large = ScimError(413, f"The request body is larger than the limit of {limit} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(raw) > limit:
        raise too_large
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_syntax(f"The request body is not valid JSON: {exc}.") from exc


def _int_param(params: dict, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid_value(f"{name} must be an integer.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_value(f"{name} must be an integer, not “{value}”.") from None


def _params_text(params: dict, name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def _list(request: HttpRequest, params: dict) -> HttpResponse:
    start = max(1, _int_param(params, "startIndex", 1))
    count = min(
        max(0, _int_param(params, "count", settings.SCIM_DEFAULT_COUNT)), settings.SCIM_MAX_RESULTS
    )
    rp = response_parameters(
        _params_text(params, "attributes"), _params_text(params, "excludedAttributes")
    )
    queryset = scim_users()
    text = params.get("filter")
    if text:
        if not isinstance(text, str):
            raise schema_filter_error()
        queryset = queryset.filter(filter_to_q(text))
    # startIndex is a position (RFC 7644 §3.4.2.4), so the page is an OFFSET on the primary key
    # index. It is kept: totalResults needs a COUNT over the same rows anyway, and at 100,000
    # members the last page costs about twice the first (bench/README.md, "SCIM benchmark").
    # Newest first (sorting is not offered, so the order is ours): a user just provisioned is on
    # the first page, where scim2-tester's list checks look for it, and a member created while
    # a client pages through shows it one member twice, never one less.
    total = queryset.count()
    # Past the end there is nothing to fetch (and an OFFSET beyond a bigint is a database error).
    page = (
        list(queryset.order_by("-pk")[start - 1 : start - 1 + count])
        if count and start <= total
        else []
    )
    base = schema.base_url(request)
    return _json(
        {
            "schemas": [schema.LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": [render(member, base, rp) for member in page],
        }
    )


def schema_filter_error() -> ScimError:
    return ScimError(400, "filter must be a string.", "invalidFilter")


def _listing(request: HttpRequest, documents: list[dict]) -> HttpResponse:
    return _json(
        {
            "schemas": [schema.LIST_RESPONSE],
            "totalResults": len(documents),
            "startIndex": 1,
            "itemsPerPage": len(documents),
            "Resources": documents,
        }
    )


@scim_view("GET")
def service_provider_config(request: HttpRequest) -> HttpResponse:
    return _json(schema.service_provider_config(request))


@scim_view("GET")
def resource_types(request: HttpRequest) -> HttpResponse:
    return _listing(request, schema.resource_types(request))


@scim_view("GET")
def resource_type(request: HttpRequest, name: str) -> HttpResponse:
    for document in schema.resource_types(request):
        if document["id"] == name:
            return _json(document)
    raise not_found(f"There is no resource type “{name}”; this service provider serves User.")


@scim_view("GET")
def schemas(request: HttpRequest) -> HttpResponse:
    return _listing(request, schema.schemas(request))


@scim_view("GET")
def schema_detail(request: HttpRequest, schema_id: str) -> HttpResponse:
    for document in schema.schemas(request):
        if document["id"] == schema_id:
            return _json(document)
    raise not_found(f"There is no schema “{schema_id}”.")


@scim_view("GET", "POST")
def users(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _list(request, request.GET.dict())
    user = parse_user(_body(request))
    member = scim_user_create(user=user, actor=request.scim_actor, request=request)
    request.scim_member = member
    base = schema.base_url(request)
    document = render(member, base, _query_response_parameters(request))
    return _json(
        document,
        status=201,
        headers={"Location": f"{base}/Users/{member.pk}", "ETag": user_version(member)},
    )


@scim_view("POST", read_only_post=True)
def search(request: HttpRequest) -> HttpResponse:
    """POST /Users/.search and /.search (this endpoint serves one resource type, User)."""
    body = _body(request)
    if not isinstance(body, dict) or schema.SEARCH_REQUEST not in (body.get("schemas") or []):
        raise invalid_syntax(f"A search request must list the schema “{schema.SEARCH_REQUEST}”.")
    return _list(request, body)


def _query_response_parameters(request: HttpRequest):
    return response_parameters(request.GET.get("attributes"), request.GET.get("excludedAttributes"))


@scim_view("GET", "PUT", "PATCH", "DELETE")
def user(request: HttpRequest, user_id: str) -> HttpResponse:
    member = scim_user_get(user_id)
    request.scim_member = member
    base = schema.base_url(request)
    if request.method == "GET" and request.headers.get("If-None-Match") == user_version(member):
        return HttpResponse(status=304, headers={"ETag": user_version(member)})
    write = {
        "member": member,
        "actor": request.scim_actor,
        "request": request,
        "if_match": request.headers.get("If-Match"),
    }
    if request.method == "PUT":
        member = scim_user_update(user=parse_user(_body(request)), **write)
    elif request.method == "PATCH":
        member = scim_user_patch(patch=_patch_op(request), base=base, **write)
    elif request.method == "DELETE":
        scim_user_hide(**write)
        return HttpResponse(status=204)
    document = render(member, base, _query_response_parameters(request))
    return _json(document, headers={"ETag": user_version(member)})


def _normalise_operations(body: Any) -> Any:
    """Entra ID quirks that scim2-models would refuse: the manager as a bare id string."""
    if not isinstance(body, dict):
        raise invalid_syntax("The request body must be a JSON object (a SCIM PatchOp).")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("Operations: a PatchOp needs a list of one or more operations.")
    for operation in operations:
        if not isinstance(operation, dict):
            raise invalid_syntax("Operations: each operation must be a JSON object.")
        path, value = operation.get("path"), operation.get("value")
        if isinstance(path, str) and path.lower().startswith("emails"):
            check_email_values(value)
        elif path is None and isinstance(value, dict):
            emails = {k.lower(): v for k, v in value.items()}.get("emails")
            if emails is not None:
                check_email_values(emails)
        if isinstance(path, str) and path.lower().endswith("manager") and isinstance(value, str):
            operation["value"] = {"value": value} if value else None
    return body


def _patch_op(request: HttpRequest):
    """The body as a scim2-models PatchOp; 400 naming what is wrong when it is not one."""
    body = _normalise_operations(_body(request))
    try:
        return PatchOp[schema.SCIM_USER].model_validate(
            body, scim_ctx=Context.RESOURCE_PATCH_REQUEST
        )
    except PydanticValidationError as exc:
        raise _patch_refusal(body, exc) from exc


def _patch_refusal(body: dict, exc: PydanticValidationError) -> ScimError:
    """scim2-models' refusal of a PatchOp: its scimType (`mutability` for removing a required
    attribute) and a message naming the attribute. scim2-models checks the operations as a
    whole and names none for that refusal, so the first operation refused alone is named."""
    first = exc.errors()[0]
    scim_type = (first.get("ctx") or {}).get("scim_type") or "invalidValue"
    detail = describe_validation_error(exc)
    if not first["loc"]:
        for operation in body["Operations"]:
            try:
                PatchOp[schema.SCIM_USER].model_validate(
                    {**body, "Operations": [operation]}, scim_ctx=Context.RESOURCE_PATCH_REQUEST
                )
            except PydanticValidationError:
                path = operation.get("path")
                if isinstance(path, str) and path and path.lower() not in detail.lower():
                    detail = f"{path}: {detail}"
                break
    return ScimError(400, detail, scim_type)


@scim_view("GET", "POST", "PUT", "PATCH", "DELETE")
def unknown(request: HttpRequest, rest: str = "") -> HttpResponse:
    raise not_found(f"There is nothing at /scim/v2/{rest}. This service provider serves /Users.")
