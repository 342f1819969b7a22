#!/usr/bin/env python3
"""Writes the masking corpus: pii.jsonl and clean.txt (seeded: same output every run).

Each line of pii.jsonl is {"text", "masked", "items"}: a log line, JSON payload
or attribute value holding personal data or secrets; the exact text the PII
masker must produce (worked out here from where each item was put and the
documented mask of its kind, never by running the masker); and the raw items
that must not survive. clean.txt holds texts free of personal data, full of
the hard negatives (ids, UUIDs, hashes, timestamps, epoch millis, versions,
addresses, ports, durations, byte counts, order numbers, Luhn-invalid runs,
prose with the word "password"); the masker must leave at least 99% of them
exactly as they are.

    python3 tests/it/data/generate.py   # rewrites both files
"""
import json
import os
import random

R = random.Random(20261126)
HERE = os.path.dirname(os.path.abspath(__file__))

FIRST = ["jane", "john", "maria", "li", "ahmed", "olga", "pierre", "yuki", "carlos", "fatima",
         "noah", "emma", "liam", "sofia", "lucas", "mia", "arjun", "chloe", "mateo", "zoe",
         "Anna", "Ben", "Chris", "Dana", "Eve"]
LAST = ["doe", "smith", "garcia", "chen", "khan", "ivanova", "martin", "tanaka", "lopez", "ali",
        "brown", "mueller", "rossi", "nguyen", "kowalski", "silva", "okafor", "berg"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "corp.example.co.uk",
           "example.de", "shop.example.io", "students.example.edu", "example.fr"]
SERVICES = ["checkout", "billing", "auth", "notifications", "search", "inventory", "shipping",
            "accounts", "payments", "gateway"]
LEVELS = ["INFO", "WARN", "ERROR", "DEBUG"]


def hexs(n):
    return "".join(R.choice("0123456789abcdef") for _ in range(n))


def digits(n, first=None):
    s = first if first is not None else str(R.randint(1, 9))
    return s + "".join(str(R.randint(0, 9)) for _ in range(n - len(s)))


def luhn_ok(num):
    total = 0
    for i, c in enumerate(reversed(num)):
        v = int(c)
        if i % 2 == 1:
            v *= 2
            if v > 9:
                v -= 9
        total += v
    return total % 10 == 0


def luhn_complete(prefix, length):
    body = prefix + "".join(str(R.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


def luhn_invalid(prefix, length):
    while True:
        n = prefix + "".join(str(R.randint(0, 9)) for _ in range(length - len(prefix)))
        if not luhn_ok(n):
            return n


def ts():
    return "2026-%02d-%02dT%02d:%02d:%02d.%03dZ" % (R.randint(1, 12), R.randint(1, 28), R.randint(0, 23),
                                                  R.randint(0, 59), R.randint(0, 59), R.randint(0, 999))


def epoch_ms():
    return str(R.randint(1_700_000_000_000, 1_799_999_999_999))


def uuid():
    return "%s-%s-4%s-%s%s-%s" % (hexs(8), hexs(4), hexs(3), R.choice("89ab"), hexs(3), hexs(12))


def ip():
    return R.choice([
        "10.%d.%d.%d" % (R.randint(0, 255), R.randint(0, 255), R.randint(1, 254)),
        "192.168.%d.%d" % (R.randint(0, 255), R.randint(1, 254)),
        "172.%d.%d.%d" % (R.randint(16, 31), R.randint(0, 255), R.randint(1, 254)),
        "203.0.113.%d" % R.randint(1, 254),
    ])


def order_no():
    return R.choice([
        "ORD-2026-%06d" % R.randint(0, 999999),
        "#%d" % R.randint(100000, 999999),
        "SO%08d" % R.randint(0, 99999999),
        "%d" % R.randint(10_000_000, 99_999_999),
    ])


# ---- personal items: (raw text, masked text) ----

def email():
    f, l, d = R.choice(FIRST), R.choice(LAST), R.choice(DOMAINS)
    local = R.choice([f"{f}.{l}", f"{f[0]}{l}", f"{f}_{l}{R.randint(1, 99)}", f"{f}+news@", f"{l}.{f}"])
    local = local.replace("+news@", "+news")
    return f"{local}@{d}", f"{local[0]}***@{d}"


def email_pct():
    raw, masked = email()
    return raw.replace("@", "%40"), masked


def us_phone():
    a, x, line = digits(3, str(R.randint(2, 9))), digits(3), digits(4, str(R.randint(0, 9)))
    raw = R.choice([
        f"({a}) {x}-{line}", f"{a}-{x}-{line}", f"{a}.{x}.{line}", f"+1 {a} {x} {line}",
        f"+1-{a}-{x}-{line}", f"+1 ({a}) {x}-{line}", f"1-{a}-{x}-{line}", f"({a}){x}-{line}",
        f"{a} {x} {line}", f"+1{a}{x}{line}",
    ])
    return raw, f"***-***-{line}"


def intl_phone():
    raw = R.choice([
        "+49 151 %s" % digits(8, "1"), "+4915%s" % digits(9), "+44 20 %s %s" % (digits(4, "7"), digits(4)),
        "+44 7700 %s" % digits(6), "+33 6 %s %s %s %s" % tuple(digits(2) for _ in range(4)),
        "+81 3-%s-%s" % (digits(4), digits(4)), "+61 4%s %s %s" % (digits(2), digits(3), digits(3)),
        "+91 98%s %s" % (digits(3), digits(5)), "+34 6%s %s %s" % (digits(2), digits(3), digits(3)),
        "+55 11 9%s-%s" % (digits(4), digits(4)),
    ])
    only = "".join(c for c in raw if c.isdigit())
    return raw, "***-***-" + only[-4:]


def phone():
    return us_phone() if R.random() < 0.6 else intl_phone()


CARD_BRANDS = [("4", 16), ("4", 16), ("4", 13), ("4", 19), ("51", 16), ("53", 16), ("55", 16), ("2221", 16),
               ("2500", 16), ("2720", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("644", 16),
               ("36", 14), ("38", 14), ("300", 14), ("305", 14), ("3528", 16), ("3589", 16), ("62", 16),
               ("62", 19), ("50", 16), ("6759", 16), ("2200", 16)]


def card():
    prefix, length = R.choice(CARD_BRANDS)
    num = luhn_complete(prefix, length)
    style = R.random()
    if length == 15 and style < 0.5:
        raw = f"{num[:4]} {num[4:10]} {num[10:]}"
    elif length == 16 and style < 0.35:
        raw = " ".join(num[i:i + 4] for i in range(0, 16, 4))
    elif length == 16 and style < 0.55:
        raw = "-".join(num[i:i + 4] for i in range(0, 16, 4))
    else:
        raw = num
    return raw, "****-****-****-" + num[-4:]


def ssn_digits():
    area = R.choice([R.randint(1, 665), R.randint(667, 899)])
    return "%03d" % area, "%02d" % R.randint(1, 99), "%04d" % R.randint(1, 9999)


def ssn():
    a, g, s = ssn_digits()
    return (f"{a}-{g}-{s}" if R.random() < 0.65 else f"{a} {g} {s}"), "***-**-****"


def ein():
    return "%02d-%07d" % (R.randint(10, 99), R.randint(0, 9999999)), "***-**-****"


def itin():
    return "9%02d-%d%d-%04d" % (R.randint(0, 99), R.choice([7, 8]), R.randint(0, 9), R.randint(0, 9999)), "***-**-****"


def secret_value():
    return R.choice(["hunter", "s3cr3t", "Tr0ub4dor", "p4ss", "letmein", "qwerty"]) + hexs(6)


def token_value():
    return R.choice(["tok_", "sk_live_", "ghp_", "xoxb-", "AKIA"]) + hexs(20)


# ---- templates ----
# A template is a function returning a list of parts: plain strings (kept as
# they are) and (raw, masked) pairs (personal items).

def kept(s):
    return s


def tpl_checkout():
    e, c = email(), card()
    return [f"{ts()} INFO checkout: order {order_no()} placed by ", e, " card ", c,
            f" amount {R.randint(1, 999)}.{R.randint(0, 99):02d} USD trace_id={hexs(32)}"]


def tpl_json_user():
    e, p = email(), phone()
    return ['{"user":{"id":%d,"email":"' % R.randint(1, 99999), e, '","phone":"', p,
            '"},"order_id":"%s","items":%d,"ts":%s}' % (order_no(), R.randint(1, 9), epoch_ms())]


def tpl_attr_email():
    return [email()]


def tpl_attr_phone():
    return [phone()]


def tpl_attr_card():
    return [card()]


def tpl_attr_ssn():
    return [R.choice([ssn, ein, itin])()]


def tpl_exception():
    c, e = card(), email()
    return [R.choice(["payment declined for card ", "card ", "charge failed: card "]), c,
            " (customer ", e, f") code={R.choice([2001, 2002, 4021])}"]


def tpl_panic():
    return ["payment worker crashed for ", email()]


def tpl_ssn_prose():
    s = R.choice([ssn, ein, itin])()
    label = R.choice(["SSN", "ssn", "SSN:", "Social Security Number", "tax id", "TIN", "EIN", "ITIN"])
    return [f"{ts()} WARN kyc: applicant {R.randint(1000, 99999)} {label} ", s,
            f" flagged for manual review (score {R.random():.3f})"]


def tpl_ssn_bare_label():
    a, g, s = ssn_digits()
    label = R.choice(["SSN ", "SSN #", "ssn: ", "tax id ", "taxpayer id: "])
    return [f"verify {label}", (a + g + s, "***-**-****"), " before payout"]


def tpl_phone_label():
    num = digits(10, str(R.randint(2, 9)))
    key = R.choice(["phone", "mobile", "contact_phone", "phoneNumber", "tel"])
    return ['{"%s":"' % key, (num, "***-***-" + num[-4:]), '","country":"US"}']


def tpl_sms():
    p = phone()
    return [f"{ts()} INFO notifications: sms sent to ", p,
            f" provider=twilio status=queued latency_ms={R.randint(5, 900)}"]


def tpl_query():
    e, t = email_pct(), token_value()
    return [f"page={R.randint(1, 20)}&email=", e, "&token=", (t, "[REDACTED]"), f"&sort=desc&per_page={R.choice([20, 50, 100])}"]


def tpl_password_kv():
    pw = secret_value()
    return [f"{ts()} DEBUG auth: login attempt user={R.choice(FIRST)} password=", (pw, "[REDACTED]"),
            f" ip={ip()} result=denied"]


def tpl_json_token():
    t = token_value()
    key = R.choice(["token", "access_token", "apiKey", "api_key", "client_secret", "refreshToken"])
    return ['{"%s":"' % key, (t, "[REDACTED]"), '","expires_in":%d}' % R.choice([3600, 900, 86400])]


def tpl_auth_header():
    t = "Bearer " + "eyJ" + hexs(30)
    return [f"{ts()} DEBUG gateway: upstream request headers Authorization: ", (t, "[REDACTED]")]


def tpl_cookie_header():
    c = f"session={hexs(24)}; theme=dark; csrftoken={hexs(16)}"
    return ["Cookie: ", (c, "[REDACTED]")]


def tpl_dsn():
    pw = secret_value()
    return [f"connecting to postgres://app_user:", (pw, "[REDACTED]"),
            f"@db-{R.randint(1, 9)}.internal:5432/orders?sslmode=require"]


def tpl_sql():
    e = email()
    return [f"SELECT id, status FROM customers WHERE email = '", e, f"' AND tenant_id = {R.randint(1, 500)} LIMIT 1"]


def tpl_access_log():
    e = email_pct()
    return [f"{ip()} - - [26/Nov/2026:10:{R.randint(10, 59)}:{R.randint(10, 59)} +0000] \"GET /api/v2/users?email=", e,
            f" HTTP/1.1\" 200 {R.randint(200, 90000)} \"-\" \"Mozilla/5.0\""]


def tpl_multi():
    e1, e2, p = email(), email(), phone()
    return ["ticket #%d: customer " % R.randint(10000, 99999), e1, " asked to change contact to ", e2,
            " and phone ", p]


def tpl_json_nested_secret():
    pw = secret_value()
    e = email()
    return ['{"event":"signup","payload":"{\\"email\\":\\"', e, '\\",\\"password\\":\\"', (pw, "[REDACTED]"),
            '\\"}","v":%d}' % R.randint(1, 3)]


def tpl_ssn_json():
    s, secret = ssn(), ssn()
    return ['{"applicant":{"tax_ref":"', s, '","ssn":"', (secret[0], "[REDACTED]"), '"}}']


def tpl_card_json():
    c = card()
    key = R.choice(["card", "pan", "cc", "payment_card"])
    return ['{"%s":"' % key, c, '","exp":"%02d/%02d","amount":%d}' % (R.randint(1, 12), R.randint(26, 31), R.randint(100, 99999))]


def tpl_card_secret_key():
    c = card()
    key = R.choice(["card_number", "credit_card", "cvv"])
    return [f"{key}=", (c[0], "[REDACTED]"), f" merchant={R.choice(SERVICES)}"]


def tpl_status():
    return ["lookup failed for ", email(), ": no account"]


def tpl_span_name():
    return ["send receipt to ", email()]


def tpl_url_path():
    c = card()
    raw = c[0].replace(" ", "").replace("-", "")
    return [f"GET /v1/cards/", (raw, c[1]), f"/transactions?limit={R.randint(1, 100)}"]


def tpl_api_key_query():
    k = token_value()
    return [f"https://api.example.com/v1/search?q=shoes&api_key=", (k, "[REDACTED]"), "&page=2"]


def tpl_phone_in_prose():
    p = us_phone()
    return ["Please call me back at ", p, " after 5pm, thanks!"]


def tpl_kv_log():
    e, p = email(), phone()
    return [f"level=info svc={R.choice(SERVICES)} msg=\"profile updated\" email=", e, " phone=\"", p, f"\" dur={R.randint(1, 999)}ms"]


PII_TEMPLATES = [tpl_checkout, tpl_json_user, tpl_attr_email, tpl_attr_phone, tpl_attr_card, tpl_attr_ssn,
                 tpl_exception, tpl_panic, tpl_ssn_prose, tpl_ssn_bare_label, tpl_phone_label, tpl_sms,
                 tpl_query, tpl_password_kv, tpl_json_token, tpl_auth_header, tpl_cookie_header, tpl_dsn,
                 tpl_sql, tpl_access_log, tpl_multi, tpl_json_nested_secret, tpl_ssn_json, tpl_card_json,
                 tpl_card_secret_key, tpl_status, tpl_span_name, tpl_url_path, tpl_api_key_query,
                 tpl_phone_in_prose, tpl_kv_log]


def render(parts):
    text, masked, items = "", "", []
    for p in parts:
        if isinstance(p, tuple):
            text += p[0]
            masked += p[1]
            items.append(p[0])
        else:
            text += p
            masked += p
    return {"text": text, "masked": masked, "items": items}


# ---- texts free of personal data ----

def clean_lines():
    user_agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.85 Safari/537.36",
                   "curl/8.5.0", "okhttp/4.12.0", "python-requests/2.32.3", "Go-http-client/2.0",
                   "kube-probe/1.31", "grpc-java-netty/1.68.1"]
    prose = [
        "user changed their password successfully",
        "password reset requested; email with the reset link queued",
        "password policy: at least 12 characters, one digit",
        "Forgot password? Use the reset link on the sign-in page.",
        "the password field must not be empty",
        "token refresh scheduled in 300 seconds",
        "session expired after 30 minutes of inactivity",
        "cookie consent banner shown",
        "authorization failed: missing scope orders:write",
        "rotating secrets for service checkout (3 of 5 done)",
        "please reset your password: the link expires in 15 minutes",
        "tokens used: prompt 1532, completion 211",
    ]
    gens = []

    def g(f):
        gens.append(f)
        return f

    @g
    def _():
        return f"{ts()} {R.choice(LEVELS)} {R.choice(SERVICES)}: request completed trace_id={hexs(32)} span_id={hexs(16)} status={R.choice([200, 201, 204, 301, 400, 404, 409, 500, 503])} duration_ms={R.randint(1, 5000)}"

    @g
    def _():
        return f"GET /api/v1/orders/{R.randint(1, 999999)}?page={R.randint(1, 50)}&per_page={R.choice([20, 50, 100])} {R.choice([200, 304, 404])} {R.randint(120, 99999)}B {R.random() * 2:.3f}s"

    @g
    def _():
        return f"traceparent: 00-{hexs(32)}-{hexs(16)}-0{R.choice('01')}"

    @g
    def _():
        return f"request_id={uuid()} user_id={R.randint(1, 10_000_000)} tenant={R.choice(SERVICES)}"

    @g
    def _():
        return f"commit {hexs(40)} (tag v{R.randint(0, 9)}.{R.randint(0, 30)}.{R.randint(0, 50)})"

    @g
    def _():
        return f"deployed {R.choice(SERVICES)} {hexs(7)} to prod-{R.choice(['eu', 'us', 'ap'])}-{R.randint(1, 3)} in {R.randint(20, 900)}s"

    @g
    def _():
        return f"ts={epoch_ms()} event=heartbeat seq={R.randint(1, 10**9)}"

    @g
    def _():
        return f"epoch_us={epoch_ms()}{R.randint(100, 999)} lag_ms={R.randint(0, 20000)}"

    @g
    def _():
        return f"{ip()}:{R.randint(1024, 65535)} -> {ip()}:{R.choice([80, 443, 4317, 4318, 5432, 6379, 8080, 9090])} tcp established"

    @g
    def _():
        return f"listening on [::]:{R.choice([8080, 4317, 9464])} (pid {R.randint(100, 99999)})"

    @g
    def _():
        return f"fe80::{hexs(4)}:{hexs(4)}:{hexs(4)}:{hexs(4)} neighbor reachable"

    @g
    def _():
        return f"{R.choice(SERVICES)} {R.randint(0, 3)}.{R.randint(0, 30)}.{R.randint(0, 20)} built with rustc 1.{R.randint(80, 95)}.0 (opentelemetry 0.{R.randint(25, 33)}.0)"

    @g
    def _():
        return f"bytes_sent={R.randint(0, 10**9)} bytes_received={R.randint(0, 10**7)} chunks={R.randint(1, 500)}"

    @g
    def _():
        return f"disk /var/lib/data used {R.randint(1, 999)},{R.randint(100, 999)},{R.randint(100, 999)},{R.randint(100, 999)} bytes ({R.random() * 100:.1f}%)"

    @g
    def _():
        return f"order {order_no()} shipped via {R.choice(['DHL', 'UPS', 'FedEx'])} tracking {R.choice(['1Z', 'JD'])}{hexs(10).upper()} weight {R.random() * 20:.2f}kg"

    @g
    def _():
        return f"invoice INV-2026{R.randint(1, 12):02d}{R.randint(1, 28):02d}-{R.randint(1, 9999):04d} total {R.randint(1, 99999)}.{R.randint(0, 99):02d} EUR"

    @g
    def _():
        prefix = R.choice(["4", "5", "6", "37", "2"])
        return f"ref {luhn_invalid(prefix, R.choice([13, 15, 16, 19]))} rejected: checksum mismatch"

    @g
    def _():
        return f"batch {luhn_invalid(R.choice(['4', '5', '6']), 16)} processed {R.randint(1, 99999)} records"

    @g
    def _():
        return R.choice(prose)

    @g
    def _():
        return f'{{"id":"{uuid()}","status":"{R.choice(["ok", "pending", "failed"])}","retries":{R.randint(0, 5)},"elapsed":{R.random() * 10:.4f},"created_at":"{ts()}"}}'

    @g
    def _():
        return f'{{"trace_id":"{hexs(32)}","span_id":"{hexs(16)}","name":"{R.choice(["GET", "POST"])} /users/{{id}}","kind":"server","dropped":{R.randint(0, 3)}}}'

    @g
    def _():
        return f"user-agent: {R.choice(user_agents)}"

    @g
    def _():
        return f"SELECT * FROM orders WHERE id = {R.randint(1, 10**7)} AND created_at > '2026-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}' LIMIT {R.choice([10, 50, 100])}"

    @g
    def _():
        return f"k8s pod {R.choice(SERVICES)}-{hexs(9)}-{hexs(5)} restarted {R.randint(1, 9)} times, exit code {R.choice([0, 1, 137, 143])}"

    @g
    def _():
        return f"gc pause {R.random() * 50:.2f}ms heap {R.randint(100, 8000)}MiB/{R.choice([8192, 16384])}MiB"

    @g
    def _():
        return f"lat {R.uniform(-90, 90):.6f} lon {R.uniform(-180, 180):.6f} accuracy {R.randint(1, 50)}m"

    @g
    def _():
        return f"ratio {R.random():.10f} over {R.randint(10**6, 10**9)} samples"

    @g
    def _():
        return f"cache hit rate {R.random() * 100:.2f}% ({R.randint(1, 10**6)}/{R.randint(10**6, 2 * 10**6)})"

    @g
    def _():
        return f"retry {R.randint(1, 5)}/{R.choice([3, 5])} after {R.choice([100, 200, 400, 800, 1600])}ms: connection refused ({ip()}:{R.randint(1, 65535)})"

    @g
    def _():
        return f"{ts()} {R.choice(LEVELS)} scheduler: job {uuid()} finished in {R.randint(1, 3600)}.{R.randint(0, 999):03d}s"

    @g
    def _():
        return f"Thu, {R.randint(1, 28)} Nov 2026 {R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d} GMT"

    @g
    def _():
        return f"{R.randint(1, 28):02d}/{R.randint(1, 12):02d}/2026 {R.randint(0, 23):02d}:{R.randint(0, 59):02d} export done"

    @g
    def _():
        return f"etag W/\"{hexs(4)}-{hexs(8)}\" content-length {R.randint(0, 10**7)}"

    @g
    def _():
        return f"sha256:{hexs(64)}"

    @g
    def _():
        return f"docker.io/library/{R.choice(SERVICES)}:{R.randint(1, 5)}.{R.randint(0, 20)}.{R.randint(0, 9)}@sha256:{hexs(64)}"

    @g
    def _():
        return f"npm install lodash@4.17.{R.randint(0, 21)} react@18.{R.randint(0, 3)}.{R.randint(0, 9)}"

    @g
    def _():
        return f"build {2026}{R.randint(1, 12):02d}{R.randint(1, 28):02d}.{R.randint(1, 99)} pipeline #{R.randint(1000, 99999)}"

    @g
    def _():
        return f"span {R.choice(['db.query', 'http.client', 'cache.get'])} took {R.randint(1, 10**6)}ns (p50 {R.randint(1, 900)}µs, p99 {R.random() * 10:.2f}ms)"

    @g
    def _():
        return f"http.response.status_code={R.choice([200, 404, 500])} server.port={R.choice([443, 8080])} network.protocol.version=1.1"

    @g
    def _():
        return f"price {R.randint(1, 9999)}.{R.randint(0, 99):02d} x {R.randint(1, 20)} = {R.randint(1, 99999)}.{R.randint(0, 99):02d}"

    @g
    def _():
        return f"phone verification disabled for tenant {R.randint(1, 999)}"

    @g
    def _():
        return f"email delivery rate {R.random() * 100:.1f}% in the last {R.choice([5, 15, 60])} minutes"

    @g
    def _():
        return f"card payments: {R.randint(0, 10**5)} authorized, {R.randint(0, 999)} declined"

    @g
    def _():
        return f"GET /assets/icon@2x.png {R.choice([200, 304])} {R.randint(100, 99999)}"

    @g
    def _():
        return f"max_tokens={R.choice([256, 512, 1024, 4096])} temperature=0.{R.randint(0, 9)} top_p=0.9{R.randint(0, 9)}"

    @g
    def _():
        return f"passwords_rotated={R.randint(0, 100)} tokens_issued={R.randint(0, 10**6)} sessions_active={R.randint(0, 10**5)}"

    @g
    def _():
        return f"dd.trace_id={R.randint(10**18, 9 * 10**18)} dd.span_id={R.randint(10**18, 9 * 10**18)}"

    @g
    def _():
        return f"queue depth {R.randint(0, 10000)} (high watermark {R.randint(10000, 65536)}), offset={R.randint(0, 10**12)}"

    @g
    def _():
        return f"color #{hexs(6)} on #{hexs(6)} contrast {R.random() * 21:.2f}:1"

    @g
    def _():
        return f"allocation {R.randint(1, 512)} x {R.choice([64, 128, 4096])} bytes at 0x{hexs(12)}"

    @g
    def _():
        return f"{R.choice(SERVICES)}_requests_total{{code=\"{R.choice([200, 500])}\"}} {R.randint(0, 10**7)} {epoch_ms()}"

    @g
    def _():
        return f"timeout after {R.choice([5, 10, 30])}s waiting for lock (held by worker-{R.randint(1, 16)}, pid {R.randint(100, 65535)})"

    @g
    def _():
        return f"Authorization header missing on {R.choice(['GET', 'POST'])} /api/v1/orders"

    @g
    def _():
        return f"cron {R.randint(0, 59)} {R.randint(0, 23)} * * {R.randint(0, 6)} next run {ts()}"

    @g
    def _():
        return f"amount_cents={R.randint(1, 10**7)} currency=USD installments={R.randint(1, 12)}"

    @g
    def _():
        return f"file report-2026-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}_{R.randint(0, 999999):06d}.csv.gz ({R.randint(1, 999)} KiB)"

    @g
    def _():
        return f"semver {R.randint(0, 9)}.{R.randint(0, 99)}.{R.randint(0, 99)}-rc.{R.randint(1, 9)}+build.{R.randint(10**7, 10**8)}"

    @g
    def _():
        def n():
            return R.randint(0, 10 ** R.randint(1, 4) - 1)
        return f"matrix [{n()} {n()} {n()}] rank {R.randint(1, 3)}"

    @g
    def _():
        return f"sleep {R.randint(1, 999)}.{R.randint(0, 999999):06d}s then retry"

    return [R.choice(gens)() for _ in range(1000)]


def main():
    records = [render(R.choice(PII_TEMPLATES)()) for _ in range(320)]
    with open(os.path.join(HERE, "pii.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(HERE, "clean.txt"), "w") as f:
        for line in clean_lines():
            assert "\n" not in line
            f.write(line + "\n")


if __name__ == "__main__":
    main()
