"""The traffic model: which APIs exist, what their everyday (non-409) requests look like.

Background requests never answer 409; every conflict comes from a scenario. A route is one
endpoint with its mix weight, its callers and a profile that decides statuses, sizes and latency.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from conflictradar.sample_logs.clients import Pool
from conflictradar.sample_logs.model import SOURCES_BY_API, Cause, Client, Request
from conflictradar.sample_logs.resources import Resources

HOSTS = {
    "orders": "shop.example.com",
    "payments": "payments.api.example.com",
    "inventory": "inventory.internal.example.com",
    "documents": "docs.example.com",
    "users": "users.api.example.com",
    "files": "s3.eu-west-1.amazonaws.com",
    "billing": "billing.internal.example.com",
}
API_SHARE = {
    "orders": 34,
    "payments": 12,
    "inventory": 13,
    "documents": 12,
    "users": 11,
    "files": 9,
    "billing": 9,
}
MAX_DURATION_US = 6_000_000
SAME = -1  # `upstream` default: the upstream answered what the client got


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: `{id}` in the template is filled with an id of the matching kind."""

    api: str
    method: str
    template: str
    kinds: tuple[str, ...] = ()
    weight: float = 1.0
    who: str = "user"
    profile: str = "read"
    path_fmt: str = ""  # concrete path with `{}` per id, when it differs from the template
    queries: tuple[str, ...] = ("",)

    def path(self, ids: list[str]) -> str:
        fmt = self.path_fmt or self.template.replace("{id}", "{}")
        return fmt.format(*ids)


def _r(
    api: str,
    spec: str,
    kinds: str = "",
    weight: float = 1.0,
    who: str = "user",
    profile: str = "read",
    path_fmt: str = "",
    queries: tuple[str, ...] = ("",),
) -> Route:
    method, template = spec.split(" ", 1)
    return Route(
        api, method, template, tuple(kinds.split()), weight, who, profile, path_fmt, queries
    )


_UPLOAD = "/acme-uploads/tenants/{id}/uploads/{id}.pdf"

# fmt: off
ROUTES: tuple[Route, ...] = (
    # orders: the shop's API and web front behind two nginx gateway nodes
    _r("orders", "GET /", "", 3, "web", "page",
       queries=("", "", "utm_source=newsletter&utm_medium=email")),
    _r("orders", "GET /static/js/app.3f9a1c7e.js", "", 5, "web", "static"),
    _r("orders", "GET /static/css/main.8b2e4f10.css", "", 4, "web", "static"),
    _r("orders", "GET /images/products/{id}.webp", "sku", 6, "web", "static"),
    _r("orders", "GET /favicon.ico", "", 1.5, "web", "static"),
    _r("orders", "GET /robots.txt", "", 0.6, "bot", "static"),
    _r("orders", "GET /products/{id}", "sku", 3, "bot", "page"),
    _r("orders", "GET /wp-login.php", "", 0.3, "bot", "scan"),
    _r("orders", "GET /.env", "", 0.2, "bot", "scan"),
    _r("orders", "GET /healthz", "", 3, "probe", "health"),
    _r("orders", "GET /orders", "", 5,
       queries=("status=open&page={page}", "page={page}&limit=20", "sort=-created_at")),
    _r("orders", "GET /orders/{id}", "order", 14,
       queries=("", "", "expand=items", "expand=items,payments")),
    _r("orders", "GET /orders/{id}/items", "order", 4),
    _r("orders", "GET /customers/{id}/orders", "email", 3, queries=("", "page={page}")),
    _r("orders", "POST /orders", "", 3, profile="create"),
    _r("orders", "PATCH /orders/{id}", "order", 2, profile="update"),
    _r("orders", "PUT /orders/{id}/shipping-address", "order", 1, profile="update"),
    _r("orders", "POST /orders/{id}/pay", "order", 1, profile="action"),
    _r("orders", "POST /orders/{id}/cancel", "order", 0.4, profile="action"),
    _r("orders", "DELETE /orders/{id}/items/{id}", "order item", 0.5, profile="delete"),
    _r("orders", "GET /carts/{id}", "cart", 4),
    _r("orders", "POST /carts/{id}/items", "cart", 2, profile="create"),
    _r("orders", "DELETE /carts/{id}/items/{id}", "cart sku", 0.6, profile="delete"),
    _r("orders", "GET /products", "", 5,
       queries=("category=shoes&page={page}", "q=rain+jacket", "category=bags&sort=price")),
    # payments: API Gateway HTTP API in front of Lambda functions
    _r("payments", "GET /payments/{id}", "payment", 10, "service"),
    _r("payments", "GET /payments", "", 3, "service"),
    _r("payments", "POST /payments", "", 6, "service", "create"),
    _r("payments", "POST /payments/{id}/capture", "payment", 4, "service", "action"),
    _r("payments", "POST /payments/{id}/cancel", "payment", 0.8, "service", "action"),
    _r("payments", "POST /payments/{id}/refunds", "payment", 1.5, "service", "create"),
    _r("payments", "PATCH /payments/{id}", "payment", 1, "service", "update"),
    _r("payments", "GET /refunds/{id}", "refund", 2, "service"),
    _r("payments", "GET /payouts/{id}", "payout", 1, "admin"),
    _r("payments", "POST /payouts/{id}/approve", "payout", 0.2, "admin", "action"),
    _r("payments", "GET /payment-methods", "", 2, "app"),
    # inventory: Traefik in front of the stock service
    _r("inventory", "GET /v1/skus/{id}", "sku", 14, "service"),
    _r("inventory", "GET /v1/skus/{id}/stock", "sku", 10, "scanner"),
    _r("inventory", "PATCH /v1/skus/{id}/stock", "sku", 4, "scanner", "update"),
    _r("inventory", "PUT /v1/skus/{id}", "sku", 1, "service", "update"),
    _r("inventory", "POST /v1/skus", "", 0.4, "service", "create"),
    _r("inventory", "GET /v1/warehouses/{id}/stock", "warehouse", 2, "service",
       queries=("sku={sku}", "below=10")),
    _r("inventory", "POST /v1/reservations", "", 3, "service", "create"),
    _r("inventory", "GET /v1/reservations/{id}", "reservation", 3, "service"),
    _r("inventory", "POST /v1/reservations/{id}/confirm", "reservation", 2, "service", "action"),
    _r("inventory", "POST /v1/reservations/{id}/release", "reservation", 1, "service", "action"),
    _r("inventory", "DELETE /v1/reservations/{id}", "reservation", 0.4, "service", "delete"),
    _r("inventory", "GET /.git/config", "", 0.1, "bot", "scan"),
    # documents: an Istio sidecar (Envoy) in front of the documents app and its WebDAV share
    _r("documents", "GET /documents/{id}", "document", 12, "web"),
    _r("documents", "GET /documents", "", 4, "web",
       queries=("folder=reports&page={page}", "q=contract", "")),
    _r("documents", "PUT /documents/{id}", "document", 3, "web", "update"),
    _r("documents", "POST /documents", "", 2, "web", "create"),
    _r("documents", "GET /documents/{id}/versions/{id}", "document version", 2, "web"),
    _r("documents", "GET /documents/{id}/content", "document", 5, "web", "download"),
    _r("documents", "POST /documents/{id}/publish", "document", 0.4, "web", "action"),
    _r("documents", "DELETE /documents/{id}", "document", 0.3, "web", "delete"),
    _r("documents", "PROPFIND /dav/{id}/{id}/", "team folder", 4, "dav", "dav"),
    _r("documents", "GET /dav/{id}/{id}/{id}.docx", "team folder document", 2, "dav", "download"),
    _r("documents", "PUT /dav/{id}/{id}/{id}.docx", "team folder document", 1, "dav", "update"),
    _r("documents", "MKCOL /dav/{id}/{id}/", "team folder", 0.2, "dav", "create"),
    _r("documents", "GET /app-health/documents/readyz", "", 3, "probe", "health"),
    # users: an AWS Application Load Balancer in front of the identity service
    _r("users", "GET /users/{id}", "user", 10),
    _r("users", "GET /users/{id}/profile", "user", 6),
    _r("users", "PATCH /users/{id}/profile", "user", 2, profile="update"),
    _r("users", "PUT /users/{id}/preferences", "user", 1, profile="update"),
    _r("users", "POST /users", "", 1, profile="create"),
    _r("users", "POST /users/{id}/verify", "user", 0.5, profile="action"),
    _r("users", "GET /users/by-email/{id}", "email", 2, "service"),
    _r("users", "DELETE /users/{id}/sessions/{id}", "user session", 1, profile="delete"),
    _r("users", "POST /sessions", "", 3, profile="create"),
    # files: S3 server access log of the upload buckets
    _r("files", f"GET {_UPLOAD}", "tenant upload", 10, "s3", "download"),
    _r("files", f"HEAD {_UPLOAD}", "tenant upload", 3, "s3", "head"),
    _r("files", f"PUT {_UPLOAD}", "tenant upload", 5, "s3", "update"),
    _r("files", f"DELETE {_UPLOAD}", "tenant upload", 1, "s3", "delete"),
    _r("files", "GET /acme-uploads", "", 2, "s3",
       queries=("list-type=2&prefix=tenants%2F{tenant}%2F", "list-type=2&max-keys=1000")),
    _r("files", "GET /acme-exports/exports/{id}/report.csv", "payout", 2, "s3", "download"),
    _r("files", "GET /acme-uploads", "", 0.2, "s3", queries=("versioning", "lifecycle")),
    # billing: the billing service's own ECS JSON access log
    _r("billing", "GET /invoices/{id}", "invoice", 10, "service"),
    _r("billing", "GET /invoices", "", 3, "admin",
       queries=("customer={cus}&status=open", "status=draft&page={page}")),
    _r("billing", "POST /invoices", "", 2, "service", "create"),
    _r("billing", "POST /invoices/{id}/finalize", "invoice", 2, "service", "action"),
    _r("billing", "POST /invoices/{id}/pay", "invoice", 1, "service", "action"),
    _r("billing", "PUT /invoices/{id}", "invoice", 0.5, "admin", "update"),
    _r("billing", "GET /subscriptions/{id}", "subscription", 4, "service"),
    _r("billing", "PATCH /subscriptions/{id}", "subscription", 1, "admin", "update"),
    _r("billing", "GET /customers/{id}", "customer", 4, "service"),
    _r("billing", "POST /customers/{id}/subscriptions", "customer", 0.6, "service", "create"),
    _r("billing", "GET /healthz", "", 2, "probe", "health"),
)
# fmt: on

_BY_API: dict[str, tuple[list[Route], list[float]]] = {}
for _route in ROUTES:
    _rs, _ws = _BY_API.setdefault(_route.api, ([], []))
    _rs.append(_route)
    _ws.append(_route.weight)
_APIS = list(API_SHARE)
_API_CUM = [sum(API_SHARE[a] for a in _APIS[: i + 1]) for i in range(len(_APIS))]

# status -> weight, by profile (never 409: conflicts come only from scenarios)
_STATUS: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "read": (
        (200, 304, 404, 401, 403, 429, 500, 502, 503),
        (88, 3, 5, 1.2, 0.6, 0.8, 0.5, 0.4, 0.5),
    ),
    "page": ((200, 304, 301, 404), (86, 8, 2, 4)),
    "static": ((200, 304, 404), (82, 16, 2)),
    "download": ((200, 206, 304, 404, 403), (84, 5, 4, 5, 2)),
    "head": ((200, 404, 403), (90, 8, 2)),
    "health": ((200, 503), (99.7, 0.3)),
    "scan": ((404, 403), (85, 15)),
    "create": ((201, 200, 400, 422, 401, 404, 500, 503), (70, 12, 6, 6, 2, 1.5, 1.5, 1)),
    "update": ((200, 204, 400, 422, 404, 403, 412, 500), (66, 20, 4, 4, 3, 1, 1, 1)),
    "action": ((200, 202, 400, 404, 422, 500, 504), (84, 5, 3, 3, 3, 1, 1)),
    "delete": ((204, 200, 404, 403, 500), (80, 8, 9, 2, 1)),
    "dav": ((207, 401, 404), (92, 5, 3)),
}
_MEDIAN_MS = {
    "read": 28,
    "page": 45,
    "static": 3,
    "download": 60,
    "head": 12,
    "health": 1.5,
    "scan": 2,
    "create": 70,
    "update": 55,
    "action": 90,
    "delete": 40,
    "dav": 35,
}
_REFERERS = {
    "orders": (
        "https://shop.example.com/",
        "https://shop.example.com/cart",
        "https://shop.example.com/checkout",
        "https://www.google.com/",
    ),
    "documents": ("https://docs.example.com/", "https://docs.example.com/folders/reports"),
}
ERROR_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Endpoint request timed out",
}


def duration_for(rng: random.Random, profile: str, status: int) -> int:
    median = _MEDIAN_MS.get(profile, 40) * (0.4 if status >= 400 and status < 500 else 1.0)
    ms = median * rng.lognormvariate(0.0, 0.7)
    if status in (502, 504):
        ms = rng.uniform(1_000, 5_500)
    return max(300, min(int(ms * 1_000), MAX_DURATION_US))


def bytes_for(rng: random.Random, profile: str, status: int, method: str) -> int:
    if status in (204, 304) or method == "HEAD":
        return 0
    if status >= 400:
        return rng.randint(40, 320)
    lo, hi = {
        "static": (900, 240_000),
        "download": (8_000, 900_000),
        "health": (2, 24),
        "page": (4_000, 60_000),
        "dav": (600, 9_000),
    }.get(profile, (180, 6_500))
    return int(lo + (hi - lo) * rng.random() ** 3)


def protocol_for(client: Client, source_api: str) -> str:
    if source_api == "files":
        return "HTTP/1.1"
    return "HTTP/2.0" if client.kind in ("browser", "mobile") else "HTTP/1.1"


def make_request(
    rng: random.Random,
    seq: int,
    *,
    source: str,
    api: str,
    start_us: int,
    client: Client,
    method: str,
    path: str,
    endpoint: str,
    status: int,
    profile: str,
    query: str = "",
    upstream: int | None = SAME,
    message: str | None = None,
    duration_us: int | None = None,
    cause: Cause | None = None,
) -> Request:
    """A request with realistic sizes, latency, referer and error text filled in."""
    if duration_us is None:
        duration_us = duration_for(rng, profile, status)
    if message is None and status >= 400 and status != 409:
        message = ERROR_TEXT.get(status)
    referers = _REFERERS.get(api, ())
    if profile not in ("page", "static"):  # API calls come from the site's own pages
        referers = tuple(r for r in referers if r.startswith(f"https://{HOSTS[api]}"))
    referer = rng.choice(referers) if referers and client.kind == "browser" else None
    return Request(
        source=source,
        start_us=start_us,
        duration_us=duration_us,
        client=client,
        method=method,
        path=path,
        query=query,
        status=status,
        upstream_status=status if upstream == SAME else upstream,
        bytes_sent=bytes_for(rng, profile, status, method),
        host=HOSTS[api],
        endpoint=endpoint,
        rid=rng.getrandbits(128),
        seq=seq,
        message=message,
        referer=referer,
        protocol=protocol_for(client, api),
        cause=cause,
    )


def fill_query(rng: random.Random, res: Resources, query: str, t_us: int) -> str:
    if "{" not in query:
        return query
    return query.format(
        page=rng.randint(2, 12),
        cus=res.pick("customer", t_us),
        sku=res.pick("sku", t_us),
        tenant=res.pick("tenant", t_us),
    )


def pick_route(rng: random.Random) -> Route:
    roll = rng.random() * _API_CUM[-1]
    api = next(a for a, c in zip(_APIS, _API_CUM, strict=True) if roll < c)
    routes, weights = _BY_API[api]
    return rng.choices(routes, weights)[0]


def background(
    rng: random.Random,
    pools: dict[str, Pool],
    res: Resources,
    seq: int,
    t_us: int,
    route: Route,
    fresh: bool = False,
) -> Request:
    """One everyday request on `route` at `t_us` (fresh ids when `fresh`)."""
    ids = [res.fresh(k, t_us) if fresh else res.pick(k, t_us) for k in route.kinds]
    statuses, weights = _STATUS[route.profile]
    status = rng.choices(statuses, weights)[0]
    client = pools[route.who].pick(rng)
    upstream: int | None = SAME
    if status in (502, 504) or (status == 429 and route.api == "payments"):
        upstream = None  # answered by the gateway itself; no upstream status logged
    return make_request(
        rng,
        seq,
        source=rng.choice(SOURCES_BY_API[route.api]),
        api=route.api,
        start_us=t_us,
        client=client,
        method=route.method,
        path=route.path(ids),
        endpoint=route.template,
        status=status,
        profile=route.profile,
        upstream=upstream,
        query=fill_query(rng, res, rng.choice(route.queries), t_us),
    )
