"""Log writers: one Request -> one line, laid out exactly as each gateway or server writes it.

nginx `combined`, AWS API Gateway JSON (AWS's documented `$context` names), Traefik JSON, Envoy
(Istio's JSON keys) inside a Kubernetes CRI envelope, AWS ALB, S3 server access and ECS JSON.
Every value derives from the Request (ids and ports from its random bits), so lines are pure.
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from datetime import UTC, datetime, timedelta, timezone

from conflictradar.sample_logs.model import FILE_BY_NAME, SECOND, Request
from conflictradar.sample_logs.timing import cri_time_ns, stamps

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ACCOUNT = "123456789012"
_ELB_ARN = f"arn:aws:elasticloadbalancing:eu-west-1:{_ACCOUNT}"
_S3_OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
_S3_CODES = {
    301: "PermanentRedirect",
    304: "-",
    400: "InvalidArgument",
    403: "AccessDenied",
    404: "NoSuchKey",
    412: "PreconditionFailed",
    500: "InternalError",
    503: "SlowDown",
}
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def clf_time(us: int, offset_min: int) -> str:
    """`02/Jun/2025:10:00:00 +0200` (seconds; month names independent of the locale)."""
    dt = datetime.fromtimestamp(us // SECOND, tz=timezone(timedelta(minutes=offset_min)))
    sign = "+" if offset_min >= 0 else "-"
    hh, mm = divmod(abs(offset_min), 60)
    return (
        f"{dt.day:02d}/{_MONTHS[dt.month - 1]}/{dt.year}:{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d} {sign}{hh:02d}{mm:02d}"
    )


def iso_utc(us: int, digits: int) -> str:
    """`2025-06-02T08:00:00.123Z` with `digits` fraction digits (0, 3 or 6)."""
    dt = datetime.fromtimestamp(us // SECOND, tz=UTC)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if digits == 0:
        return base + "Z"
    frac = f"{us % SECOND:06d}"[:digits]
    return f"{base}.{frac}Z"


def rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano: nanoseconds with trailing zeros dropped (as Traefik and containerd)."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def _target(req: Request) -> str:
    return req.path + (f"?{req.query}" if req.query else "")


def _port(req: Request) -> int:
    return 1024 + (req.rid >> 40) % 64_000


def _addr(ip: str, port: int, brackets: bool = True) -> str:
    return f"[{ip}]:{port}" if ":" in ip and brackets else f"{ip}:{port}"


def _pod(req: Request, subnet: int) -> str:
    return f"10.42.{subnet}.{11 + (req.rid >> 8) % 3 * 7}"


def _ms(us: int) -> int:
    return max(0, us // 1_000)


def _json(obj: object, sort: bool = False) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=sort)


def combined(req: Request, ordinal: int) -> str:
    offset = FILE_BY_NAME[req.source].utc_offset_min
    return (
        f'{req.client.ip} - - [{clf_time(stamps(req)[0], offset)}] "{req.method} '
        f'{_target(req)} {req.protocol}" {req.status} {req.bytes_sent} '
        f'"{req.referer or "-"}" "{req.client.user_agent}"'
    )


def apigw(req: Request, ordinal: int) -> str:
    raw = base64.b64encode(req.rid.to_bytes(16, "big")[:11]).decode()
    request_id = "".join(_ALNUM[ord(c) % 62] if c in "+/" else c for c in raw)
    up = req.upstream_status
    return _json(
        {
            "requestId": request_id,
            "ip": req.client.ip,
            "requestTime": clf_time(req.start_us, 0),
            "requestTimeEpoch": str(stamps(req)[0] // 1_000),
            "httpMethod": req.method,
            "routeKey": f"{req.method} {req.endpoint}",
            "path": req.path,
            "status": str(req.status),
            "protocol": req.protocol,
            "responseLength": str(req.bytes_sent),
            "integrationStatus": "-" if up is None else str(up),
            "integrationLatency": "-" if up is None else str(max(1, _ms(req.duration_us) - 3)),
            "errorMessage": req.message or "-",
            "userAgent": req.client.user_agent,
        }
    )


def traefik(req: Request, ordinal: int) -> str:
    port = _port(req)
    duration_ns = req.duration_us * 1_000 + req.rid % 1_000
    overhead_ns = 60_000 + req.rid % 300_000
    start = rfc3339_nano(req.start_us * 1_000)
    line: dict[str, object] = {
        "ClientAddr": _addr(req.client.ip, port),
        "ClientHost": req.client.ip,
        "ClientPort": str(port),
        "ClientUsername": "-",
        "DownstreamContentSize": req.bytes_sent,
        "DownstreamStatus": req.status,
        "Duration": duration_ns,
        "RequestAddr": req.host,
        "RequestContentSize": 0 if req.method in ("GET", "HEAD", "DELETE") else 80 + req.rid % 900,
        "RequestCount": ordinal,
        "RequestHost": req.host,
        "RequestMethod": req.method,
        "RequestPath": _target(req),
        "RequestPort": "-",
        "RequestProtocol": req.protocol,
        "RequestScheme": "https",
        "RetryAttempts": 0,
        "StartLocal": start,
        "StartUTC": start,
        "TLSCipher": "TLS_AES_128_GCM_SHA256",
        "TLSVersion": "1.3",
        "entryPointName": "websecure",
        "level": "info",
        "msg": "",
        "request_User-Agent": req.client.user_agent,
        "time": iso_utc(req.end_us, 0),
    }
    if req.upstream_status is not None:  # routed to the inventory service
        service = f"{_pod(req, 3)}:8080"
        line.update(
            {
                "OriginContentSize": req.bytes_sent,
                "OriginDuration": max(duration_ns - overhead_ns, 1_000),
                "OriginStatus": req.upstream_status,
                "Overhead": overhead_ns,
                "RouterName": "inventory-inventory-api-websecure@kubernetescrd",
                "ServiceAddr": service,
                "ServiceName": "inventory-inventory-api-8080@kubernetescrd",
                "ServiceURL": {
                    "Scheme": "http",
                    "Opaque": "",
                    "User": None,
                    "Host": service,
                    "Path": "",
                    "RawPath": "",
                    "OmitHost": False,
                    "ForceQuery": False,
                    "RawQuery": "",
                    "Fragment": "",
                    "RawFragment": "",
                },
            }
        )
    else:
        line.update(
            {
                "OriginContentSize": 0,
                "OriginDuration": 0,
                "OriginStatus": 0,
                "Overhead": duration_ns,
            }
        )
    return _json(line, sort=True)


def envoy(req: Request, ordinal: int) -> str:
    pod = _pod(req, 1)
    probe = req.path.startswith("/app-health/")
    failed = req.upstream_status is None
    details, flags = "via_upstream", "-"
    if failed:
        details, flags = (
            ("upstream_response_timeout", "UT")
            if req.status == 504
            else ("upstream_reset_before_response_started{connection_failure}", "UF")
        )
    line = {
        "authority": req.host,
        "bytes_received": 0 if req.method in ("GET", "HEAD", "DELETE") else 120 + req.rid % 4_000,
        "bytes_sent": req.bytes_sent,
        "connection_termination_details": None,
        "downstream_local_address": f"{pod}:8080",
        "downstream_remote_address": _addr(req.client.ip, _port(req)),
        "duration": _ms(req.duration_us),
        "method": req.method,
        "path": _target(req),
        "protocol": "HTTP/2" if req.protocol == "HTTP/2.0" else req.protocol,
        "request_id": str(uuid.UUID(int=req.rid, version=4)),
        "requested_server_name": None,
        "response_code": req.status,
        "response_code_details": details,
        "response_flags": flags,
        "route_name": "default",
        "start_time": iso_utc(stamps(req)[0], 3),
        "upstream_cluster": "inbound|15020||" if probe else "inbound|8080||",
        "upstream_host": None if failed else f"{pod}:{15020 if probe else 8080}",
        "upstream_local_address": None if failed else f"127.0.0.6:{30_000 + req.rid % 30_000}",
        "upstream_service_time": None if failed else str(max(0, _ms(req.duration_us) - 1)),
        "upstream_transport_failure_reason": None,
        "user_agent": req.client.user_agent,
        "x_forwarded_for": req.client.ip,
    }
    return f"{rfc3339_nano(cri_time_ns(req))} stdout F {_json(line, sort=True)}"


def alb(req: Request, ordinal: int) -> str:
    forwarded = req.upstream_status is not None
    fixed = req.status == 409 and not forwarded  # a listener rule answered by itself
    target = f"10.0.{(req.rid >> 12) % 3 * 16 + 4}.{20 + (req.rid >> 20) % 40}:8080"
    if fixed:
        target_col, timings, actions, tg = "-", "-1 -1 -1", "fixed-response", "-"
    else:
        tg = f"{_ELB_ARN}:targetgroup/users-api/6d0ecf831eec9f09"
        target_col, actions = target, "forward"
        timings = (
            f"0.00{req.rid % 2} {req.duration_us / SECOND:.3f} 0.000"
            if forwarded
            else "0.001 -1 -1"
        )
    up = "-" if req.upstream_status is None else str(req.upstream_status)
    h2 = req.protocol == "HTTP/2.0"
    ssl = "TLS_AES_128_GCM_SHA256 TLSv1.3" if h2 else "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2"
    received = 0 if req.method in ("GET", "HEAD") else 300 + req.rid % 1_500
    return " ".join(
        (
            "h2" if h2 else "https",
            iso_utc(stamps(req)[0], 6),
            "app/users-api-prod/5f0d3c1e2b4a6978",
            _addr(req.client.ip, _port(req), brackets=False),
            target_col,
            timings,
            str(req.status),
            up,
            str(received + 240 + len(req.path)),
            str(req.bytes_sent + 310),
            f'"{req.method} https://{req.host}:443{_target(req)} {req.protocol}"',
            f'"{req.client.user_agent}"',
            ssl,
            tg,
            f'"Root=1-{req.start_us // SECOND:08x}-{req.rid % (1 << 96):024x}"',
            f'"{req.host}"',
            f'"arn:aws:acm:eu-west-1:{_ACCOUNT}:certificate/2f4b1a9e-6c3d-4e8f-9a0b-1c2d3e4f5a6b"',
            "5" if fixed else "10",
            iso_utc(stamps(req)[1], 6),
            f'"{actions}"',
            '"-"',
            '"-"',
            f'"{target_col}"',
            f'"{up}"',
            '"-"',
            '"-"',
            f"TID_{(req.rid >> 3) % (1 << 128):032x}",
        )
    )


def _s3_operation(req: Request) -> str:
    has_key = req.path.count("/") > 1
    q = req.query.split("=", 1)[0]
    if has_key:
        if req.method == "POST":
            return "REST.POST.RESTORE" if q == "restore" else "REST.POST.UPLOADS"
        if req.method == "PUT" and q == "partNumber":
            return "REST.PUT.PART"
        return f"REST.{req.method}.OBJECT"
    sub = {
        "versioning": "VERSIONING",
        "lifecycle": "LIFECYCLE",
        "policy": "BUCKETPOLICY",
        "tagging": "TAGGING",
    }.get(q, "BUCKET")
    return f"REST.{req.method}.{sub}"


def s3(req: Request, ordinal: int) -> str:
    bucket, _, key = req.path.lstrip("/").partition("/")
    code = req.message if req.status == 409 else _S3_CODES.get(req.status, "-")
    if req.status < 300:
        code = "-"
    is_object = bool(key) and req.method in ("GET", "PUT", "HEAD")
    who = zlib.crc32(req.client.ip.encode())
    role = ("uploader", "exporter", "thumbnailer", "backup")[who % 4]
    requester = (
        f"arn:aws:iam::{_ACCOUNT}:user/ops-admin"
        if "Console" in req.client.user_agent
        else f"arn:aws:sts::{_ACCOUNT}:assumed-role/{role}-service/i-0{who:08x}"
    )
    host_id = base64.b64encode(req.rid.to_bytes(16, "big") * 4 + b"\x07\x11\x3a").decode()
    total_ms = max(1, _ms(req.duration_us))
    return " ".join(
        (
            _S3_OWNER,
            bucket,
            f"[{clf_time(stamps(req)[0], 0)}]",
            req.client.ip,
            requester,
            f"{req.rid % (1 << 64):016X}",
            _s3_operation(req),
            key or "-",
            f'"{req.method} {_target(req)} HTTP/1.1"',
            str(req.status),
            code or "-",
            str(req.bytes_sent) if req.bytes_sent else "-",
            str(req.bytes_sent or 20_000 + req.rid % 900_000) if is_object else "-",
            str(total_ms),
            str(max(1, total_ms - 1 - req.rid % 5)) if req.status < 400 else "-",
            '"-"',
            f'"{req.client.user_agent}"',
            "-",
            host_id,
            "SigV4",
            "TLS_AES_128_GCM_SHA256",
            "AuthHeader",
            req.host,
            "TLSv1.3",
            "-",
            "-",
        )
    )


def ecs(req: Request, ordinal: int) -> str:
    level = "error" if req.status >= 500 else "warn" if req.status >= 400 else "info"
    url: dict[str, str] = {"path": req.path, "domain": req.host}
    if req.query:
        url["query"] = req.query
    line: dict[str, object] = {
        "@timestamp": iso_utc(stamps(req)[0], 3),
        "log.level": level,
        "message": "request finished",
        "client": {"ip": req.client.ip},
        "ecs.version": "1.6.0",
        "event": {"dataset": "billing-api.access", "duration": req.duration_us * 1_000},
        "http": {
            "request": {"method": req.method, "id": str(uuid.UUID(int=req.rid, version=4))},
            "response": {"status_code": req.status, "body": {"bytes": req.bytes_sent}},
            "version": "2" if req.protocol == "HTTP/2.0" else "1.1",
        },
        "service": {"name": "billing-api", "environment": "production"},
        "trace": {"id": f"{req.rid % (1 << 128):032x}"},
        "url": url,
        "user_agent": {"original": req.client.user_agent},
    }
    if req.message:
        line["error"] = {"message": req.message}
    return _json(line)


WRITERS = {
    "combined": combined,
    "apigw": apigw,
    "traefik": traefik,
    "envoy": envoy,
    "alb": alb,
    "s3": s3,
    "ecs": ecs,
}


def format_line(req: Request, ordinal: int) -> str:
    """The log line for `req`; `ordinal` numbers the file's requests in start order."""
    return WRITERS[FILE_BY_NAME[req.source].format](req, ordinal)
