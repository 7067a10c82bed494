#!/usr/bin/env python3
"""Drive a command in a pseudo-terminal as a person would: wait for each prompt, then type
the answer. Used by the `keel init` tests.

    pty_drive.py SCRIPT.json -- CMD ARGS...

SCRIPT.json: [[regex, text to type], ...]; each regex is waited for (10 s) in what the
command printed since the previous answer. Prints the whole transcript on stdout (the tests
check that hidden input never shows) and exits with the command's status (97 on a timeout).
"""
import json
import os
import pty
import re
import select
import sys
import time

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def main():
    sep = sys.argv.index("--")
    script = json.load(open(sys.argv[1]))
    cmd = sys.argv[sep + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    transcript = b""
    seen = 0  # position in the ANSI-stripped transcript

    def read(timeout):
        nonlocal transcript
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(fd, 4096)
        except OSError:
            return None
        if not data:
            return None
        transcript += data
        return True

    for pattern, answer in script:
        deadline = time.time() + 10
        rx = re.compile(pattern.encode())
        while True:
            m = rx.search(ANSI.sub(b"", transcript), seen)
            if m:
                break
            if time.time() > deadline or read(0.2) is None:
                sys.stdout.write(ANSI.sub(b"", transcript).decode(errors="replace"))
                sys.stdout.write(f"\n[pty_drive] timed out waiting for {pattern!r}\n")
                os.kill(pid, 9)
                sys.exit(97)
        # The next prompt is looked for after this match (it may have come in the same read).
        seen = m.end()
        time.sleep(0.05)
        os.write(fd, answer.encode())
    while read(10) is True:
        pass
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(ANSI.sub(b"", transcript).decode(errors="replace"))
    sys.exit(os.waitstatus_to_exitcode(status))


main()
