"""Headless Chromium for tests, driven over the DevTools protocol (stdlib only).

``Browser`` starts Debian's Chromium with ``--remote-debugging-pipe``: the
protocol's JSON messages, each ended by a NUL byte, go to the browser on file
descriptor 3 and come back on 4. It evaluates JavaScript, presses keys and
collects what the page reported as an error (uncaught exceptions,
``console.error``, failed loads). ``dump_dom`` is the one-shot alternative for
static states (``--dump-dom`` after ``--virtual-time-budget``).
"""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync']
KEY_CODES = {'ArrowLeft': 37, 'ArrowRight': 39, 'Escape': 27, 'j': 74, 'k': 75}


def chromium() -> str:
    """Path of the Chromium binary (tools/setup_env.sh installs Debian's)."""
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    assert browser, 'Chromium is needed: tools/setup_env.sh installs it (apt-get install chromium)'
    return browser


def dump_dom(url: str, budget_ms: int = 5000, timeout: float = 120) -> str:
    """The DOM of ``url`` after ``budget_ms`` of virtual time, in a fresh browser."""
    with tempfile.TemporaryDirectory(prefix='mmxai-chromium-') as profile:
        result = subprocess.run(
            [chromium(), *FLAGS, f'--user-data-dir={profile}', f'--virtual-time-budget={budget_ms}',
             '--dump-dom', url], capture_output=True, text=True, timeout=timeout)
    return result.stdout


class Browser:
    """One headless Chromium page under the DevTools protocol.

    Args:
        width (int): Window width in pixels.
        height (int): Window height in pixels.
        timeout (float): Seconds to wait for any answer of the browser.
    """

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 60) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix='mmxai-chromium-')
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def bind_protocol_fds() -> None:  # in the child, before exec
            read, write = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [chromium(), *FLAGS, '--remote-debugging-pipe', f'--user-data-dir={self.profile}',
             f'--window-size={width},{height}', 'about:blank'],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=bind_protocol_fds)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._answers: Dict[int, dict] = {}
        self.events: List[dict] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session: Optional[str] = None
        pages = [t for t in self.send('Target.getTargets')['targetInfos'] if t['type'] == 'page']
        target = pages[0]['targetId'] if pages else \
            self.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        self.session = self.send('Target.attachToTarget',
                                 {'targetId': target, 'flatten': True})['sessionId']
        for domain in ('Page', 'Runtime', 'Log'):
            self.send(f'{domain}.enable')

    # ------------------------------------------------------------- protocol
    def _read(self) -> None:
        buffer = b''
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b''
            if not chunk:
                with self._changed:
                    self._answers[-1] = {}  # the browser is gone
                    self._changed.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b'\0')
            with self._changed:
                for raw in messages:
                    message = json.loads(raw)
                    if 'id' in message:
                        self._answers[message['id']] = message
                    else:
                        self.events.append(message)
                self._changed.notify_all()

    def send(self, method: str, params: Optional[dict] = None) -> dict:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        ident = self._next_id
        message: Dict[str, Any] = dict(id=ident, method=method, params=params or {})
        if self.session and not method.startswith(('Target.', 'Browser.')):
            message['sessionId'] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + self.timeout
        with self._changed:
            while ident not in self._answers:
                if -1 in self._answers:
                    raise RuntimeError(f'{method}: the browser exited')
                if not self._changed.wait(max(deadline - time.monotonic(), 0)):
                    raise TimeoutError(f'{method}: no answer in {self.timeout} s')
            answer = self._answers.pop(ident)
        if 'error' in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get('result', {})

    # ------------------------------------------------------------- page
    def open(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        with self._changed:
            start = len(self.events)
        self.send('Page.navigate', {'url': url})
        deadline = time.monotonic() + self.timeout
        with self._changed:
            while not any(e.get('method') == 'Page.loadEventFired' for e in self.events[start:]):
                if not self._changed.wait(max(deadline - time.monotonic(), 0)):
                    raise TimeoutError(f'{url} did not load in {self.timeout} s')

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send('Runtime.evaluate', {'expression': expression, 'returnByValue': True,
                                                'awaitPromise': True})
        if 'exceptionDetails' in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result['result'].get('value')

    def wait_for(self, expression: str, timeout: Optional[float] = None) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f'{expression} stayed {value!r}')
            time.sleep(0.02)

    def press(self, key: str) -> None:
        """Press and release a key (``ArrowLeft``, ``ArrowRight``, ``Escape``, ``j``, ``k``)."""
        code = key if len(key) > 1 else f'Key{key.upper()}'
        for kind in ('keyDown', 'keyUp'):
            self.send('Input.dispatchKeyEvent', {'type': kind, 'key': key, 'code': code,
                                                 'windowsVirtualKeyCode': KEY_CODES[key]})

    def errors(self) -> List[str]:
        """What the page reported as errors so far: exceptions, console errors, failed loads."""
        found = []
        with self._changed:
            events = list(self.events)
        for event in events:
            method, params = event.get('method'), event.get('params', {})
            if method == 'Runtime.exceptionThrown':
                details = params['exceptionDetails']
                found.append(details.get('exception', {}).get('description') or details['text'])
            elif method == 'Runtime.consoleAPICalled' and params['type'] in ('error', 'assert'):
                found.append(' '.join(str(a.get('value', a.get('description')))
                                      for a in params['args']))
            elif method == 'Log.entryAdded' and params['entry']['level'] == 'error':
                entry = params['entry']
                found.append(f"{entry['text']} {entry.get('url', '')}".strip())
        return found

    # ------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the browser and remove its profile."""
        try:
            if self.process.poll() is None:
                os.write(self._to_browser, json.dumps(
                    dict(id=0, method='Browser.close')).encode() + b'\0')
                self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._to_browser)
            self._reader.join(timeout=10)
            if not self._reader.is_alive():  # never close a descriptor a thread still reads
                os.close(self._from_browser)
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> 'Browser':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
