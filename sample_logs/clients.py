"""The traffic model's callers: browsers, apps, SDKs, curl, crawlers, probes and their addresses.

Every (ip, user agent) pair is unique across the whole population, so SPEC's "client" names exactly
one caller. Some callers share an office NAT address (same IP, other browser) or a user agent
(same SDK build, other host): both are different clients, which the scenarios use as edge cases.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from conflictradar.sample_logs.model import Client

_V4_FIRST = (
    24,
    31,
    37,
    46,
    50,
    62,
    64,
    67,
    68,
    71,
    73,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
    91,
    92,
    93,
    94,
    95,
    96,
    98,
    104,
    107,
    108,
    109,
    142,
    173,
    174,
    176,
    178,
    184,
    185,
    188,
    193,
    194,
    195,
    199,
    212,
    213,
    217,
)
_V6_PREFIX = (0x2A02, 0x2A01, 0x2001, 0x2600, 0x2607, 0x2A00, 0x2003, 0x2A0A, 0x2806)

_DESKTOPS = (
    "Windows NT 10.0; Win64; x64",
    "Macintosh; Intel Mac OS X 10_15_7",
    "X11; Linux x86_64",
)
_ANDROID = ("Pixel 8", "Pixel 7a", "SM-S918B", "SM-A546B", "SM-G991B", "CPH2449", "moto g84 5G")
_APP = "ShopApp"


def _browser_ua(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.42:
        os_ = rng.choice(_DESKTOPS)
        return (
            f"Mozilla/5.0 ({os_}) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{rng.randint(122, 126)}.0.0.0 Safari/537.36"
        )
    if roll < 0.52:
        v = rng.randint(123, 125)
        return (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.{rng.randint(2400, 2535)}."
            f"{rng.randint(20, 120)}"
        )
    if roll < 0.66:
        os_ = rng.choice(
            (
                "Windows NT 10.0; Win64; x64",
                "Macintosh; Intel Mac OS X 10.15",
                "X11; Linux x86_64",
                "X11; Ubuntu; Linux x86_64",
            )
        )
        v = rng.randint(124, 127)
        return f"Mozilla/5.0 ({os_}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
    if roll < 0.76:
        safari = rng.choice(("17.4.1", "17.5", "17.5", "16.6"))
        return (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{safari} Safari/605.1.15"
        )
    if roll < 0.88:
        ios = rng.choice(("17_5_1", "17_5", "17_4_1", "16_7_8"))
        dev = rng.choice(("iPhone; CPU iPhone OS", "iPad; CPU OS"))
        return (
            f"Mozilla/5.0 ({dev} {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{ios.split('_')[0]}.{ios.split('_')[1]} Mobile/15E148 Safari/604.1"
        )
    return (
        f"Mozilla/5.0 (Linux; Android {rng.choice((10, 13, 14))}; K) AppleWebKit/537.36 "
        f"(KHTML, like Gecko) Chrome/{rng.randint(123, 126)}.0.0.0 Mobile Safari/537.36"
    )


def _mobile_ua(rng: random.Random) -> str:
    build = rng.choice(((5, 12, 0), (5, 12, 0), (5, 11, 2), (5, 10, 4)))
    ver = ".".join(map(str, build))
    if rng.random() < 0.5:
        ios = rng.choice(("17.5.1", "17.5", "17.4.1", "16.7.8"))
        return f"{_APP}/{ver} (iPhone; iOS {ios}; Scale/3.00)"
    android = rng.choice((12, 13, 14))
    if rng.random() < 0.3:
        return (
            f"Dalvik/2.1.0 (Linux; U; Android {android}; {rng.choice(_ANDROID)} "
            f"Build/UP1A.{rng.randint(230905, 240505)}.0{rng.randint(10, 99)})"
        )
    build_no = build[1] * 100 + build[2]
    return f"{_APP}/{ver} (com.example.shop; build:{build_no}; Android {android}) okhttp/4.12.0"


# fmt: off
_SERVICE_UAS = (
    "Go-http-client/1.1", "Go-http-client/2.0", "python-requests/2.32.3",
    "python-requests/2.31.0", "python-httpx/0.27.0", "axios/1.7.2", "axios/1.6.8",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Apache-HttpClient/4.5.14 (Java/17.0.11)", "ReactorNetty/1.1.19", "okhttp/4.12.0",
    "acme-payments-python/3.4.1 python/3.12.3",
    "acme-payments-java/4.2.0 (Java 17.0.11; Linux amd64)", "checkout-service/2.31.0",
    "fulfilment-worker/1.8.3", "warehouse-scanner/3.1.4 (Android 13; Zebra TC52)",
    "Faraday v2.9.2", "Ruby",
)
_CLI_UAS = ("curl/8.7.1", "curl/7.88.1", "curl/8.5.0", "PostmanRuntime/7.39.0", "HTTPie/3.2.2",
            "Wget/1.21.4", "insomnia/9.2.0")
_BOTS = (  # (address prefix of the crawler's network, user agent)
    ("66.249.", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("66.249.", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
                "(KHTML, like Gecko) Chrome/125.0.6422.141 Mobile Safari/537.36 "
                "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("157.55.", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
    ("54.36.", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"),
    ("", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/81.0.4044.129 Safari/537.36"),
    ("", "python-requests/2.25.1"),
    ("", "Mozilla/5.0 zgrab/0.x"),
)
_SCANNER_UA = "warehouse-scanner/3.1.4 (Android 13; Zebra TC52)"
_PROBE_UAS = ("kube-probe/1.30", "kube-probe/1.29", "Prometheus/2.53.0", "Blackbox Exporter/0.25.0")
_DAV_UAS = (
    "Microsoft-WebDAV-MiniRedir/10.0.19045", "Microsoft-WebDAV-MiniRedir/10.0.22631",
    "davfs2/1.7.0 neon/0.32.5", "WebDAVFS/3.0.0 (03008000) Darwin/23.5.0 (arm64)",
    "rclone/v1.67.0", "Cyberduck/8.8.2.41350 (Mac OS X/14.5) (arm64)",
)
_S3_UAS = (
    "Boto3/1.34.131 md/Botocore#1.34.131 ua/2.0 os/linux#5.10.219-208.866.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.12.4 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.131",
    "aws-sdk-java/2.25.60 Linux/5.10.218-208.862.amzn2.x86_64 "
    "OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 vendor/Amazon.com_Inc. io/sync "
    "http/Apache cfg/retry-mode/legacy",
    "aws-cli/2.17.4 md/awscrt#0.20.11 ua/2.0 os/linux#6.5.0-1022-aws md/arch#x86_64 "
    "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
    "md/distrib#ubuntu.22 md/prompt#off md/command#s3.cp",
    "aws-sdk-go-v2/1.30.1 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/s3#1.58.0",
    "S3Console/0.4",
)
# fmt: on


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


def public_v4(rng: random.Random) -> str:
    return (
        f"{rng.choice(_V4_FIRST)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def public_v6(rng: random.Random) -> str:
    # Every group non-zero, so the text is the same compressed or not (ALB logs it unbracketed).
    groups = [rng.choice(_V6_PREFIX)] + [rng.randint(0x100, 0xFFFF) for _ in range(7)]
    return ":".join(f"{g:x}" for g in groups)


def private_v4(rng: random.Random, second: int | None = None) -> str:
    b = rng.randint(0, 3) if second is None else second
    return f"10.{b}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"


@dataclass(frozen=True, slots=True)
class Pool:
    """Callers of one kind for one API; `pick` favours a few heavy users, like real traffic."""

    clients: tuple[Client, ...]

    def pick(self, rng: random.Random) -> Client:
        return self.clients[int(len(self.clients) * rng.random() ** 2.2)]

    def other(self, rng: random.Random, than: Client) -> Client:
        for _ in range(20):
            c = self.pick(rng)
            if c.key != than.key:
                return c
        raise RuntimeError("pool too small to find a different client")


def build_pools(rng: random.Random, lines: int) -> dict[str, Pool]:
    """All caller pools by name; sizes grow with the traffic volume."""
    seen: set[tuple[str, str]] = set()

    def make(kind: str, n: int, ip: Callable[[], str], ua: Callable[[], str]) -> list[Client]:
        out: list[Client] = []
        for _ in range(50 * n):  # bounded: a fixed address may run out of new user agents
            if len(out) == n:
                break
            client = Client(ip(), ua(), kind)
            if client.key not in seen:
                seen.add(client.key)
                out.append(client)
        return out

    scale = max(lines, 2_000)

    def person_ip() -> str:
        return public_v6(rng) if rng.random() < 0.16 else public_v4(rng)

    def browser_ua() -> str:
        return _browser_ua(rng)

    browsers = make("browser", min(6_000, scale // 30), person_ip, browser_ua)
    # Offices and homes behind one NAT address: same IP, another browser.
    for _ in range(len(browsers) // 9):
        shared = rng.choice(browsers).ip
        browsers.extend(make("browser", 1, _constant(shared), browser_ua))
    rng.shuffle(browsers)
    mobile = make("mobile", min(3_000, scale // 70), person_ip, lambda: _mobile_ua(rng))
    cli = make(
        "cli",
        16,
        lambda: rng.choice((public_v4(rng), private_v4(rng))),
        lambda: rng.choice(_CLI_UAS),
    )
    services = make(
        "service", 48, lambda: private_v4(rng, rng.randint(0, 2)), lambda: rng.choice(_SERVICE_UAS)
    )
    scanners = make("service", 8, lambda: private_v4(rng, 7), _constant(_SCANNER_UA))
    bots: list[Client] = []
    for prefix, bot_ua in _BOTS:

        def bot_ip(prefix: str = prefix) -> str:
            if prefix:
                return prefix + f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            return public_v4(rng)

        bots.extend(make("bot", 4, bot_ip, _constant(bot_ua)))
    probes = make("probe", 8, lambda: private_v4(rng, 0), lambda: rng.choice(_PROBE_UAS))
    dav = make("dav", 40, person_ip, lambda: rng.choice(_DAV_UAS))
    s3 = make("s3sdk", 24, lambda: private_v4(rng, rng.randint(0, 2)), lambda: rng.choice(_S3_UAS))
    return {
        "user": Pool((*browsers, *mobile, *mobile, *cli)),
        "web": Pool(tuple(browsers)),
        "app": Pool((*mobile, *cli)),
        "service": Pool((*services, *cli)),
        "scanner": Pool((*scanners, *services[:12])),
        "bot": Pool(tuple(bots)),
        "probe": Pool(tuple(probes)),
        "dav": Pool((*dav, *browsers[:40])),
        "s3": Pool(tuple(s3)),
        "admin": Pool(tuple(browsers[: max(20, len(browsers) // 20)])),
    }
