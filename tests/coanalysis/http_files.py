"""A local HTTP server on 127.0.0.1 for the zoo download tests (no network needed)."""

from __future__ import annotations

import http.server
import threading


class Server:
    """Serves `files` (path -> bytes) with HTTP Range support; `cut` truncates the next response
    to that many bytes and closes the connection (a dropped download)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut, self.ranges = files, None, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                header = self.headers.get("Range")
                outer.ranges.append(header)
                if header:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                data = body[start:]
                if outer.cut is not None:
                    data, outer.cut = data[:outer.cut], None
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
