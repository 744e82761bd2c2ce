"""Fuzz the response parser: ``parse_response`` must only ever return a ``GatewayResponse`` or
raise ``ResponseError`` (never another exception, never hang), and with a verifier it must
never return an unverified success.

Two engines share the time budget: hypothesis (structured answers: declarations with odd
encodings, DTD fragments, entities, signatures, byte mutations of valid answers) and, when it is
installed, atheris (coverage-guided libFuzzer, run in a child process). Every input that breaks
the contract is saved to ``tests/data/fuzz_corpus/`` (``tests/protocol/test_fuzz_corpus.py`` replays
them); figures are printed at the end. Exit code 1 when anything was found.

    .venv/bin/python benchmarks/fuzz_response.py [--seconds 180] [--engine both|hypothesis|atheris]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "fuzz_corpus"
#: An input taking longer than this counts as a hang, seconds.
INPUT_TIMEOUT_SECONDS = 5.0
#: Examples per hypothesis run; the budget is checked between runs.
BATCH_EXAMPLES = 400
KEY = "0123456789abcdefghijklmnopqrstuv"
ENCODINGS = ["utf-8", "UTF-8", "gbk", "GBK", "gb2312", "gb18030", "utf-16", "utf-16-le",
             "utf-32", "utf-7", "latin-1", "ascii", "big5", "shift_jis", "cp1252", "idna",
             "punycode", "unicode_escape", "raw_unicode_escape", "rot13", "hex", "base64",
             "x-unknown", "utf_8_sig", "mbcs", "charmap"]


class Violation(Exception):
    """The parser broke its contract; ``signature`` names the bug (type and place)."""

    def __init__(self, signature: str) -> None:
        super().__init__(signature)
        self.signature = signature


class Hang(BaseException):
    """Raised by SIGALRM when one input runs past INPUT_TIMEOUT_SECONDS."""


def make_verifiers() -> list[tuple[Any, str]]:
    from unsign_worker.protocol.signing import Md5Signer, RsaSigner

    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return [(None, "utf-8"), (Md5Signer(KEY), "utf-8"), (Md5Signer(KEY), "gbk"),
            (RsaSigner(public_key_pem=public_pem), "utf-8")]


def judge(body: bytes, verifiers: list[tuple[Any, str]]) -> str:
    """The outcome label of one input; raises Violation when the contract is broken."""
    from unsign_worker.protocol.exceptions import ResponseError
    from unsign_worker.protocol.response import GatewayResponse, parse_response

    labels = []
    for verifier, charset in verifiers:
        try:
            result = parse_response(body, verifier=verifier, charset=charset)
        except ResponseError as exc:
            labels.append(f"refused:{exc.reason}")
            continue
        except Exception as exc:  # noqa: BLE001 - any other exception is the finding
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            raise Violation(f"{type(exc).__name__} at {Path(frame.filename).name}:"
                            f"{frame.lineno}") from None
        if not isinstance(result, GatewayResponse):
            raise Violation(f"returned {type(result).__name__}")
        if verifier is not None and result.is_success and not result.verified:
            raise Violation("unverified success returned with a verifier")
        labels.append("success" if result.is_success else "failure")
    return labels[1]  # the MD5/utf-8 outcome, the worker's usual configuration


def timed_judge(body: bytes, verifiers: list[tuple[Any, str]]) -> tuple[str, float]:
    signal.setitimer(signal.ITIMER_REAL, INPUT_TIMEOUT_SECONDS)
    started = time.monotonic()
    try:
        return judge(body, verifiers), time.monotonic() - started
    except Hang:
        raise Violation(f"hang over {INPUT_TIMEOUT_SECONDS:g}s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def save(body: bytes) -> Path:
    """Keep ``body`` in the regression corpus, named by its hash (both engines share names)."""
    CORPUS.mkdir(parents=True, exist_ok=True)
    path = CORPUS / f"crash-{hashlib.sha1(body).hexdigest()[:16]}.bin"
    path.write_bytes(body)
    return path


def seeds() -> list[bytes]:
    """Valid answers (signed, both charsets) and known hostile shapes to start from."""
    from unsign_worker.protocol.response import render_response
    from unsign_worker.protocol.signing import Md5Signer

    signer = Md5Signer(KEY)
    out = []
    for charset in ("utf-8", "gbk"):
        out.append(render_response(is_success=True, customer={"customer_code": "C1",
                                   "type_code": "中文"}, request={"service": "customer_unsign"},
                                   signer=signer, charset=charset))
        out.append(render_response(is_success=False, error="ILLEGAL_SIGN", signer=signer,
                                   charset=charset))
    out.append(b'<!DOCTYPE a [<!ENTITY x "y">]><alipay><is_success>T</is_success></alipay>')
    out.extend(p.read_bytes() for p in sorted(CORPUS.glob("*.bin")))
    return out


def answers() -> Any:
    """Hypothesis strategy: XML-shaped answers, then optionally mutated at the byte level."""
    from hypothesis import strategies as st

    text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)
    special = st.sampled_from(["&amp;", "&#0;", "&#x110000;", "&lt;", "&xxe;", "<![CDATA[x]]>",
                               "<!--c-->", "<?pi x?>", "]]>", "\ufeff", "\x00", "\\ud800"])
    value = st.lists(st.one_of(text, special), max_size=4).map("".join)
    name = st.sampled_from(["is_success", "error", "sign", "sign_type", "customer_code",
                            "type_code", "charge_agent", "alipay", "a", "x:y"])
    leaf = st.builds(lambda n, v: f"<{n}>{v}</{n}>", name, value)
    customer = st.lists(leaf, max_size=4).map(
        lambda xs: "<response><customer>" + "".join(xs) + "</customer></response>")
    request = st.lists(st.builds(lambda n, v: f'<param name="{n}">{v}</param>', text, value),
                       max_size=3).map(lambda xs: "<request>" + "".join(xs) + "</request>")
    flag = st.sampled_from(["T", "F", "", "t", " T ", "X"]).map(
        lambda f: f"<is_success>{f}</is_success>")
    children = st.lists(st.one_of(flag, leaf, customer, request), max_size=6).map("".join)
    doctype = st.sampled_from([""] * 6 + ["<!DOCTYPE alipay>", '<!doctype a [<!ENTITY x "y">]>',
                                          '<!DOCTYPE alipay SYSTEM "file:///etc/passwd">'])
    # Mostly the encodings the gateway uses, declared and applied alike, so that most inputs
    # get past decoding into the parser and the signature checks; sometimes anything at all.
    usual = st.sampled_from(["utf-8", "utf-8", "utf-8", "gbk", "gbk", "gb2312"])
    declared = st.one_of(usual, usual, st.sampled_from(ENCODINGS), text)

    @st.composite
    def encoded(draw: Any) -> bytes:
        enc = draw(declared)
        decl = draw(st.sampled_from([f"<?xml version={q}1.0{q} encoding={q}{enc}{q}?>"
                                     for q in ('"', "'")] + [""]))
        root = draw(st.sampled_from(["alipay", "alipay", "x"]))
        doc = f"{decl}{draw(doctype)}<{root}>{draw(children)}</{root}>"
        applied = draw(st.one_of(st.just(enc), st.sampled_from(ENCODINGS)))
        return _encode(doc, applied, draw(st.sampled_from(["strict", "replace"])))

    raw = st.one_of(encoded(), encoded(), signed(), st.binary(max_size=512))
    return st.builds(_mutate, raw, st.lists(st.tuples(st.integers(0, 10_000),
                                                      st.binary(max_size=3)), max_size=4))


def signed() -> Any:
    """Hypothesis strategy: answers rendered and MD5-signed as the gateway does (then mutated
    by the caller), so the verification paths see correct signatures too."""
    from hypothesis import strategies as st

    from unsign_worker.protocol.response import render_response
    from unsign_worker.protocol.signing import Md5Signer

    signer = Md5Signer(KEY)
    names = st.sampled_from(["customer_code", "type_code", "biz_type", "user_email"])
    values = st.text(alphabet=st.characters(codec="gbk", exclude_categories=("Cs", "Cc")),
                     max_size=12)
    return st.builds(
        lambda ok, customer, error, charset: render_response(
            is_success=ok, error=error or "SYSTEM_ERROR", customer=customer, signer=signer,
            charset=charset),
        st.booleans(), st.dictionaries(names, values, max_size=4),
        st.sampled_from(["", "ILLEGAL_SIGN", "STATUS_CUSTOMER_SIGN", "A&B<C"]),
        st.sampled_from(["utf-8", "gbk"]))


def _encode(doc: str, encoding: str, errors: str) -> bytes:
    try:
        return doc.encode(encoding, errors)
    except (LookupError, ValueError, TypeError):  # ValueError covers UnicodeError
        return doc.encode("utf-8", "surrogatepass")


def _mutate(body: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(body)
    for position, chunk in edits:
        at = position % (len(data) + 1)
        data[at:at + 1] = chunk  # one byte becomes 0 to 3 bytes: delete, flip or insert
    return bytes(data)


def run_hypothesis(seconds: float, verifiers: list[tuple[Any, str]]) -> dict[str, Any]:
    from hypothesis import HealthCheck, Phase, given, settings

    stats: dict[str, Any] = {"inputs": 0, "outcomes": Counter(), "found": {}, "known": set(),
                             "slowest": 0.0}
    pending: dict[str, bytes] = {}

    @settings(max_examples=BATCH_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(answers())
    def one(body: bytes) -> None:
        stats["inputs"] += 1
        try:
            label, spent = timed_judge(body, verifiers)
        except Violation as found:
            stats["outcomes"]["VIOLATION"] += 1
            if found.signature in stats["found"] or found.signature in stats["known"]:
                return  # known already: keep exploring elsewhere
            pending[found.signature] = body  # the last one raised is hypothesis's shrunk one
            raise
        stats["outcomes"][label] += 1
        stats["slowest"] = max(stats["slowest"], spent)

    deadline = time.monotonic() + seconds
    for body in seeds():  # corpus files that still fail are known: not searched for again
        try:
            stats["outcomes"][timed_judge(body, verifiers)[0]] += 1
        except Violation as known:
            stats["known"].add(known.signature)
    while time.monotonic() < deadline:
        pending.clear()
        try:
            one()
        except (Violation, BaseExceptionGroup) as failure:
            group = failure if isinstance(failure, BaseExceptionGroup) else None
            for found in (group.exceptions if group else (failure,)):
                if isinstance(found, Violation) and found.signature in pending:
                    path = save(pending[found.signature])
                    stats["found"][found.signature] = str(path)
    return stats


ATHERIS_CHILD = """
import json, sys, time, atheris
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
with atheris.instrument_imports(include=["unsign_worker", "defusedxml"]):
    import fuzz_response as fr
    import unsign_worker.protocol.response, unsign_worker.protocol.signing
verifiers = fr.make_verifiers()
counts, seen = {{}}, set()
def one(data):
    try:
        label = fr.judge(data, verifiers)
    except fr.Violation as found:
        label = "VIOLATION"
        if found.signature not in seen:
            seen.add(found.signature)
            print("FOUND", json.dumps([found.signature, str(fr.save(data))]),
                  flush=True)
    counts[label] = counts.get(label, 0) + 1
    if sum(counts.values()) % 2000 == 0:
        open({stats!r}, "w").write(json.dumps(counts))
atheris.Setup(sys.argv, one)
atheris.Fuzz()
"""


def run_atheris(seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fuzz-response-"))
    (work / "corpus").mkdir()
    for i, body in enumerate(seeds()):
        (work / "corpus" / f"seed{i}").write_bytes(body)
    script = work / "child.py"
    script.write_text(ATHERIS_CHILD.format(root=str(ROOT), bench=str(Path(__file__).parent),
                                           stats=str(work / "stats.json")))
    args = [sys.executable, str(script), str(work / "corpus"), f"-max_total_time={int(seconds)}",
            f"-timeout={int(INPUT_TIMEOUT_SECONDS)}", "-rss_limit_mb=2048", "-max_len=4096",
            f"-artifact_prefix={work}/", "-print_final_stats=1"]
    before = {str(p) for p in CORPUS.glob("*.bin")}
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    reported = dict(json.loads(line[6:]) for line in done.stdout.splitlines()
                    if line.startswith("FOUND "))
    found = {sig: path for sig, path in reported.items() if path not in before}
    known = {sig for sig, path in reported.items() if path in before}
    for artifact in work.glob("*-*"):
        if artifact.name.split("-")[0] in ("crash", "timeout", "oom", "slow"):
            found[f"libFuzzer {artifact.name.split('-')[0]}"] = str(
                save(artifact.read_bytes()))
    runs = [int(line.split(":")[-1]) for line in done.stderr.splitlines()
            if line.startswith("stat::number_of_executed_units")]
    stats_file = work / "stats.json"
    outcomes = Counter(json.loads(stats_file.read_text())) if stats_file.exists() else Counter()
    return {"inputs": runs[0] if runs else sum(outcomes.values()), "outcomes": outcomes,
            "found": found, "known": known, "slowest": None, "exit": done.returncode}


def report(engine: str, seconds: float, stats: dict[str, Any]) -> None:
    total = max(1, sum(stats["outcomes"].values()))
    slowest = stats.get("slowest")
    print(f"\n== {engine}: {stats['inputs']} inputs in {seconds:.0f} s "
          f"({stats['inputs'] / max(seconds, 1e-9):.0f}/s)"
          + (f", slowest input {slowest * 1000:.1f} ms" if slowest else ""))
    for label, count in stats["outcomes"].most_common():
        print(f"   {label:28s} {count:8d}  {100 * count / total:5.1f}%")
    for signature, path in stats["found"].items():
        print(f"   FOUND {signature} -> {Path(path).relative_to(ROOT)}")
    for signature in sorted(stats["known"]):
        print(f"   STILL FAILING (already in the corpus) {signature}")
    if not stats["found"] and not stats["known"]:
        print("   no contract violation found")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="total budget (s)")
    parser.add_argument("--engine", choices=["both", "hypothesis", "atheris"], default="both")
    opts = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    def alarm(signum: int, frame: object) -> None:
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    try:
        import atheris  # noqa: F401
        have_atheris = True
    except ImportError:
        have_atheris = False
    engines = ["hypothesis", "atheris"] if opts.engine == "both" else [opts.engine]
    if not have_atheris and "atheris" in engines:
        print("atheris is not installed: hypothesis only")
        engines = ["hypothesis"]
    share = opts.seconds / len(engines)
    found = 0
    for engine in engines:
        started = time.monotonic()
        stats = (run_hypothesis(share, make_verifiers()) if engine == "hypothesis"
                 else run_atheris(share))
        report(engine, time.monotonic() - started, stats)
        found += len(stats["found"]) + len(stats["known"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the hypothesis process: {peak_mb:.0f} MB; "
          f"corpus: {len(list(CORPUS.glob('*.bin')))} file(s) in {CORPUS.relative_to(ROOT)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
