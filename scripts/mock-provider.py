#!/usr/bin/env python3
"""A stand-in SMS provider for trying an adapter: prints every request it gets
and answers 201 {"id": "msg-N"}. Loopback only.

    python3 scripts/mock-provider.py 9000
"""
import http.server
import itertools
import json
import sys

counter = itertools.count(1)


class Provider(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(f"{self.command} {self.path}", flush=True)
        for name, value in self.headers.items():
            print(f"  {name}: {value}", flush=True)
        print(f"  body: {body.decode(errors='replace')}", flush=True)
        answer = json.dumps({"id": f"msg-{next(counter)}"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
print(f"mock provider on http://127.0.0.1:{port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Provider).serve_forever()
