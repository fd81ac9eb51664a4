"""The OpenAI-compatible generator against a real local HTTP server with scripted replies."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from steper.errors import SteperError
from steper.generators import GenerationRequest, build_generator
from steper.generators.openai_compat import OpenAICompatGenerator
from tests.generators.scripted_server import ScriptedServer, closed_port

KEY = "sk-test-SECRET-4242"
FAST = {"timeout_s": 2.0, "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("STEPER_TEST_KEY", KEY)


def make(server, **opts) -> OpenAICompatGenerator:
    cfg = {
        "name": "openai",
        "base_url": server.base_url,
        "model": "tiny",
        "api_key_env": "STEPER_TEST_KEY",
        **FAST,
    }
    cfg.update(opts)
    return build_generator(cfg)


def test_completions_success(server):
    with make(server, stop=["\n"], max_new_tokens=7) as gen:
        server.reply = lambda body: " Mirel Okana directed it.\nQ: next"
        out = gen.generate([GenerationRequest("PROMPT one"), GenerationRequest("PROMPT two", "r1.")])
    assert out == [" Mirel Okana directed it.", " Mirel Okana directed it."]
    bodies = [r["body"] for r in server.completion_requests()]
    assert sorted(b["prompt"] for b in bodies) == ["PROMPT one\nA:", "PROMPT two\nA: r1."]
    b = bodies[0]
    assert b["model"] == "tiny" and b["max_tokens"] == 7 and b["stop"] == ["\n"] and b["temperature"] == 0.0
    assert all(r["path"] == "/v1/completions" for r in server.completion_requests())
    assert gen.stats["requests"] == 2 and gen.stats["failures"] == 0 and gen.stats["retries"] == 0
    assert gen.stats["prompt_tokens"] == 14 and gen.stats["generated_tokens"] == 6


def test_chat_with_prefix_continuation(server):
    with make(server, api="chat") as gen:
        out = gen.generate([GenerationRequest("PROMPT", ""), GenerationRequest("PROMPT", "Step one.")])
    assert all(isinstance(t, str) for t in out)
    reqs = sorted(server.completion_requests(), key=lambda r: len(r["body"]["messages"]))
    assert all(r["path"] == "/v1/chat/completions" for r in reqs)
    first, cont = reqs[0]["body"], reqs[1]["body"]
    assert first["messages"] == [{"role": "user", "content": "PROMPT"}]
    assert "continue_final_message" not in first
    assert cont["messages"] == [
        {"role": "user", "content": "PROMPT"},
        {"role": "assistant", "content": "Step one."},
    ]
    assert cont["continue_final_message"] is True and cont["add_generation_prompt"] is False


@pytest.mark.parametrize("failures", [("429",), ("500", "503"), ("nonjson",), ("nochoices",)])
def test_retries_then_success(server, failures):
    server.script("FLAKY", *failures, "ok")
    with make(server) as gen:
        out = gen.generate([GenerationRequest("FLAKY prompt")])
    assert out[0] is not None and out[0].startswith(" reply to")
    assert gen.stats["retries"] == len(failures) and gen.stats["failures"] == 0
    assert sum(gen.stats["errors"].values()) == len(failures)
    assert len(server.completion_requests()) == len(failures) + 1


def test_timeout_then_success():
    with ScriptedServer(hang_s=1.5) as server:
        server.script("SLOW", "hang", "ok")
        with make(server, timeout_s=0.3) as gen:
            t0 = time.monotonic()
            out = gen.generate([GenerationRequest("SLOW prompt")])
            assert time.monotonic() - t0 < 1.4  # did not wait for the hanging reply
    assert out[0] is not None
    assert gen.stats["errors"] == {"timeout": 1} and gen.stats["retries"] == 1


def test_failing_request_is_none_and_counted_others_succeed(server):
    server.script("BROKEN", "500")
    server.script("BAD", "400")
    server.reply = lambda body: f"<{body['prompt']}>"
    with make(server, max_retries=2, stop=[]) as gen:
        reqs = [GenerationRequest(f"ok {i}") for i in range(4)]
        reqs.insert(2, GenerationRequest("BROKEN one"))
        reqs.append(GenerationRequest("BAD one"))
        out = gen.generate(reqs)
    assert out == ["<ok 0\nA:>", "<ok 1\nA:>", None, "<ok 2\nA:>", "<ok 3\nA:>", None]
    assert gen.stats["requests"] == 6 and gen.stats["failures"] == 2
    assert gen.stats["retries"] == 2  # the 500 retried twice, the 400 never
    assert gen.stats["errors"] == {"http_500": 3, "http_400": 1}


def test_concurrency_bound_respected():
    # Counted inside the reply, before the response is sent: a client thread cannot have its next
    # request in flight yet (the server's own in-flight count is lowered only after the response
    # went out, so a fast client can overlap it by one).
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def reply(body):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return f"<{body['prompt']}>"

    with ScriptedServer(reply=reply) as server:
        with make(server, concurrency=3, stop=[]) as gen:
            out = gen.generate([GenerationRequest(f"q{i}") for i in range(13)])
    assert state["max"] == 3  # reached, never exceeded
    assert out == [f"<q{i}\nA:>" for i in range(13)]  # in the request order


def test_key_never_leaks(server, caplog):
    server.script("DENIED", "401")
    caplog.set_level(logging.DEBUG)
    gen = make(server)
    gen.generate([GenerationRequest("hello")])
    gen.generate([GenerationRequest("DENIED later")])  # mid-run failure: logged, None
    seen = [r["headers"].get("authorization") for r in server.completion_requests()]
    assert seen and all(h == f"Bearer {KEY}" for h in seen)  # the server did get it
    assert KEY not in repr(gen) and KEY not in str(gen.stats) and KEY not in repr(vars(gen))
    assert KEY not in caplog.text
    assert "failed" in caplog.text
    gen.close()


def test_missing_key_sends_empty(server, monkeypatch, caplog):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    caplog.set_level(logging.INFO, logger="steper.generators.openai_compat")
    with make(server, api_key_env="NO_SUCH_KEY_VAR") as gen:
        assert gen.generate([GenerationRequest("x")])[0] is not None
    assert server.completion_requests()[0]["headers"]["authorization"] == "Bearer EMPTY"
    assert "NO_SUCH_KEY_VAR is not set" in caplog.text


def test_unreachable_server_at_start():
    port = closed_port()
    gen = build_generator(
        {"name": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m", **FAST, "max_retries": 2}
    )
    with pytest.raises(
        SteperError, match=rf"cannot reach http://127.0.0.1:{port}/v1.*vllm.*teacher.base_url"
    ):
        gen.generate([GenerationRequest("x"), GenerationRequest("y")])
    assert gen.stats["retries"] == 2 and gen.stats["errors"] == {"connection": 3}
    gen.close()


def test_wrong_model_or_key_at_start(server):
    server.script("x", "404")
    with (
        make(server, model="llama-typo") as gen,
        pytest.raises(SteperError, match="llama-typo.*serves: tiny"),
    ):
        gen.generate([GenerationRequest("x")])
    server.rules.clear()
    server.script("y", "401")
    with make(server) as gen, pytest.raises(SteperError, match="STEPER_TEST_KEY") as err:
        gen.generate([GenerationRequest("y")])
    assert KEY not in str(err.value)
    assert (
        len([r for r in server.completion_requests() if "y" in r["body"]["prompt"]]) == 1
    )  # no retry on 401


def test_model_from_server_when_unset(server):
    with make(server, model=None) as gen:
        assert gen.generate([GenerationRequest("x")])[0] is not None
        assert gen.model == "tiny"
    assert server.completion_requests()[0]["body"]["model"] == "tiny"


def test_fits_with_max_context(server, tiny_model_dir):
    gen = make(server, max_context=50, max_new_tokens=10)
    assert gen.fits("short") and not gen.fits("x" * 400)
    assert make(server).fits("x" * 100_000)  # no max_context: never cut
    exact = make(server, max_context=50, max_new_tokens=10, tokenizer=str(tiny_model_dir))
    assert exact.chat is False and exact.fits("Zorvak Telu") and not exact.fits("Zorvak Telu " * 60)


def test_not_an_openai_server(server):
    """No /v1/models at all (a web server, a base_url without /v1): one error before any request."""
    server.models_status = 404
    with make(server) as gen, pytest.raises(SteperError) as err:
        gen.generate([GenerationRequest("x")])
    msg = str(err.value)
    assert "does not look like an OpenAI-compatible server" in msg and server.base_url in msg
    assert "teacher.base_url" in msg and "HTTP 404" in msg
    assert server.completion_requests() == []  # nothing was generated against it


def test_models_body_without_a_list():
    """A server whose /v1/models answers 200 but not an OpenAI model list."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            payload = b'{"models": ["smollm2-135m"]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        gen = build_generator({"name": "openai", "base_url": base, "model": "m", **FAST})
        with pytest.raises(SteperError, match=r"does not look like an OpenAI.*gave no model list"):
            gen.generate([GenerationRequest("x")])
        gen.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_model_not_served_names_the_setting_and_the_served_names():
    with ScriptedServer(models=("smollm2-135m", "other")) as server:
        with make(server, model="llama-3") as gen, pytest.raises(SteperError) as err:
            gen.generate([GenerationRequest("x")])
        msg = str(err.value)
        assert "teacher.model='llama-3' is not served by" in msg and server.base_url in msg
        assert "serves: smollm2-135m, other" in msg
        assert server.completion_requests() == []
        # the same generator built for evaluate.py's `target` section names that setting
        gen = OpenAICompatGenerator.from_config(
            {"base_url": server.base_url, "model": "llama-3", **FAST}, section="target"
        )
        with pytest.raises(SteperError, match=r"target\.model=.llama-3.*Set target\.model"):
            gen.generate([GenerationRequest("x")])
        gen.close()
        with (
            make(server, model=None) as gen,
            pytest.raises(SteperError, match=r"teacher.model is not set.*other"),
        ):
            gen.generate([GenerationRequest("x")])


def test_server_gone_mid_run_is_one_error_after_bounded_retries():
    server = ScriptedServer().start()
    base_url = server.base_url
    try:
        gen = make(server, concurrency=4)
        assert gen.generate([GenerationRequest("q0"), GenerationRequest("q1")])[0] is not None
    finally:
        server.stop()  # the listening socket is closed: every later request is refused
    t0 = time.monotonic()
    with pytest.raises(SteperError) as err:
        gen.generate([GenerationRequest(f"q{i}") for i in range(2, 12)])
    elapsed = time.monotonic() - t0
    gen.close()
    msg = str(err.value)
    assert msg.startswith(f"lost the server at {base_url} mid-run")
    assert "after 3 retries" in msg and "rerun the same command" in msg
    assert elapsed < 5  # FAST backoff: 3 retries of at most 0.05 s, then everyone stops
    # at least one request used all its retries; the others stopped retrying once it had
    assert gen.stats["errors"]["connection"] >= 4 and gen.stats["retries"] <= 3 * 4
    # and the generator stays stopped: no new requests against a server known to be gone
    with pytest.raises(SteperError, match="lost the server"):
        gen.generate([GenerationRequest("later")])
