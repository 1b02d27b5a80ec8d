#!/usr/bin/env python3
"""A small course-forum bot: answers posts with the Runnable Answers API.

It reads forum posts, asks the service, and writes a reply for each: the answer with its
citations and a link to run the experiment, or a "forwarded to the TAs" note when the
service declines (declined questions land in the TAs' queue).

Two ways to feed it posts (standard library only, no dependencies):

    # JSON on stdin: one post, a list of posts, or one post per line; replies as JSON lines
    echo '{"id": 1, "title": "Why sqrt(d)?", "body": "Why divide attention logits?"}' |
        RA_API_TOKEN=ra_... python examples/forum_bot.py --api http://127.0.0.1:5000

    # webhook: POST a post (or a Discourse-style {"post": {...}}) to a local HTTP server
    RA_API_TOKEN=ra_... python examples/forum_bot.py --serve --port 8085
    curl -s -X POST http://127.0.0.1:8085/webhook -d '{"id": 2, "body": "What is AGI?"}'

A post is ``{"id", "title"?, "body" | "raw" | "text"}``. The token needs the ``ask`` scope
(create one with ``flask --app service tokens create forum-bot --scopes ask``).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_QUESTION_CHARS = 2000
MAX_POST_BYTES = 64 * 1024
CITE = re.compile(r"\[(@[a-z][a-z0-9_-]*(?:\s*;\s*@[a-z][a-z0-9_-]*)*)\]")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


@dataclass
class Client:
    """The few API calls the bot makes."""

    base_url: str
    token: str | None = None
    timeout_s: float = 30.0
    retries: int = 2  # on 429 / 503, waiting Retry-After (at most 30 s) between tries

    def ask(self, question: str, lang: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"question": question}
        if lang:
            body["lang"] = lang
        return self._request("POST", "/api/v1/ask", body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "ra-forum-bot/1.0"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.base_url.rstrip("/") + path
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                error = _error_of(exc)
                if exc.code in (429, 503) and attempt < self.retries:
                    time.sleep(min(30.0, float(exc.headers.get("Retry-After") or 1)))
                    continue
                raise ApiError(
                    exc.code, error.get("code", "http_error"), error.get("message", "")
                ) from None
        raise AssertionError("unreachable")


def _error_of(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        return json.loads(exc.read().decode("utf-8")).get("error", {})
    except (ValueError, AttributeError):
        return {}


# -- posts and replies ----------------------------------------------------------------


def question_of(post: dict[str, Any]) -> str:
    """The question in a post: its title and text (Discourse's {"post": {...}} too)."""
    if isinstance(post.get("post"), dict):
        post = {**post["post"], "title": post["post"].get("topic_title", post.get("title"))}
    parts = [post.get("title"), post.get("body") or post.get("raw") or post.get("text")]
    text = "\n\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return text[:MAX_QUESTION_CHARS]


def post_id(post: dict[str, Any]) -> Any:
    inner = post.get("post")
    return inner.get("id") if isinstance(inner, dict) else post.get("id")


def numbered(markdown: str, citations: list[dict[str, Any]]) -> str:
    """[@key] markers become [n], matching the numbered source list."""
    number = {c["key"]: c["number"] for c in citations}

    def repl(match: re.Match[str]) -> str:
        keys = [k.strip().lstrip("@") for k in match.group(1).split(";")]
        return "[" + ", ".join(str(number[k]) for k in keys if k in number) + "]"

    return CITE.sub(repl, markdown)


def source_line(c: dict[str, Any]) -> str:
    authors = c.get("authors") or ["?"]
    who = f"{authors[0]} et al." if len(authors) > 2 else " and ".join(authors)
    link = f" <{c['url']}>" if c.get("url") else ""
    return f"{c['number']}. {who} ({c['year']}). *{c['title']}*. {c['venue']}.{link}"


def compose_reply(post: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The reply to post, as forum Markdown plus the facts a forum integration may want."""
    answer = result.get("answer")
    ja = result.get("lang") == "ja"
    if result.get("abstained") or not answer:
        related = [m for m in result.get("matches", []) if m.get("score", 0) > 0][:3]
        text = (
            "この質問には自信を持って答えられなかったため、TA に転送しました。"
            "回答をお待ちください。"
            if ja
            else "I couldn't find a confident answer to this, so I've forwarded your question "
            "to the TAs. They'll follow up here."
        )
        if related:
            text += "\n\n" + ("関連しそうな項目:" if ja else "Possibly related:") + "\n"
            text += "\n".join(f"- {m['question']} (`{m['slug']}`)" for m in related)
        return {
            "post_id": post_id(post),
            "answered": False,
            "forwarded_to_tas": True,
            "question_id": result.get("question_id"),
            "reply": text,
        }
    citations = answer.get("citations") or []
    lines = [f"**{answer['question']}**", "", numbered(answer["answer_markdown"], citations)]
    if citations:
        lines += ["", "**出典**" if ja else "**Sources**", *map(source_line, citations)]
    run_url = None
    if answer.get("runner"):
        run_url = f"{answer['url']}?lang={answer['lang']}"
        label = (
            "この主張を確かめる実験を実行" if ja else "Run the experiment that checks this claim"
        )
        lines += ["", f"▶ {label}: {run_url}"]
    if result.get("did_you_mean"):
        others = [m for m in result["did_you_mean"] if m["slug"] != answer["slug"]]
        if others:
            lines += ["", ("もしかして: " if ja else "Did you mean: ") + others[0]["question"]]
    confidence = f"{result.get('confidence', 0):.0%}"
    lines += ["", f"<sub>{'信頼度' if ja else 'Confidence'} {confidence} · {answer['url']}</sub>"]
    return {
        "post_id": post_id(post),
        "answered": True,
        "forwarded_to_tas": False,
        "slug": answer["slug"],
        "confidence": result.get("confidence"),
        "citations": [c.get("url") for c in citations],
        "run_url": run_url,
        "question_id": result.get("question_id"),
        "reply": "\n".join(lines),
    }


def handle(client: Client, post: Any) -> dict[str, Any]:
    if not isinstance(post, dict):
        return {"post_id": None, "error": "not_a_post", "reply": None}
    question = question_of(post)
    if not question:
        return {"post_id": post_id(post), "error": "empty_post", "reply": None}
    try:
        result = client.ask(
            question, lang=post.get("lang") if post.get("lang") in ("en", "ja") else None
        )
    except ApiError as exc:
        return {"post_id": post_id(post), "error": exc.code, "status": exc.status, "reply": None}
    except (OSError, ValueError) as exc:
        return {
            "post_id": post_id(post),
            "error": "service_unreachable",
            "detail": str(exc),
            "reply": None,
        }
    return compose_reply(post, result)


# -- input modes ---------------------------------------------------------------------------


def read_posts(text: str) -> Iterator[Any]:
    """One JSON post, a JSON list of posts, or JSON lines."""
    text = text.strip()
    if not text:
        return
    try:
        data = json.loads(text)
    except ValueError:
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)
        return
    yield from data if isinstance(data, list) else [data]


def run_stdin(client: Client, posts: Iterable[Any]) -> int:
    failed = 0
    for post in posts:
        reply = handle(client, post)
        failed += "error" in reply
        print(json.dumps(reply, ensure_ascii=False), flush=True)
    return 1 if failed else 0


def make_server(client: Client, host: str, port: int, secret: str | None) -> ThreadingHTTPServer:
    class Webhook(BaseHTTPRequestHandler):
        server_version = "ra-forum-bot/1.0"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") != "/webhook":
                return self._send(404, {"error": "not_found"})
            sent = self.headers.get("X-Webhook-Secret", "")
            if secret and not hmac.compare_digest(sent.encode(), secret.encode()):
                return self._send(401, {"error": "bad_secret"})
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_POST_BYTES:
                return self._send(413 if length else 400, {"error": "bad_length"})
            try:
                post = json.loads(self.rfile.read(length).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return self._send(400, {"error": "invalid_json"})
            reply = handle(client, post)
            self._send(502 if reply.get("error") == "service_unreachable" else 200, reply)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"forum-bot: {format % args}\n")

    return ThreadingHTTPServer((host, port), Webhook)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get("RA_API_URL", "http://127.0.0.1:5000"))
    parser.add_argument(
        "--token", default=os.environ.get("RA_API_TOKEN"), help="default: $RA_API_TOKEN"
    )
    parser.add_argument("--serve", action="store_true", help="run the webhook server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085, help="0 picks a free port")
    parser.add_argument(
        "--secret",
        default=os.environ.get("FORUM_WEBHOOK_SECRET"),
        help="require this X-Webhook-Secret header (default: $FORUM_WEBHOOK_SECRET)",
    )
    args = parser.parse_args(argv)
    client = Client(args.api, args.token)
    if not args.serve:
        try:
            return run_stdin(client, read_posts(sys.stdin.read()))
        except ValueError as exc:
            print(f"forum-bot: invalid JSON on stdin: {exc}", file=sys.stderr)
            return 2
    server = make_server(client, args.host, args.port, args.secret)
    host, port = server.server_address[:2]
    print(f"forum-bot: listening on http://{host}:{port}/webhook", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
