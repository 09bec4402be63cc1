"""The Binance simulator as a local process on free loopback ports, for tests that
need an exchange they can break (faults via its control API) without the lab; its fixtures `sim_server`
and `sim` are loaded by the conftest.py of tests/modules and tests/lab."""
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[1] / "lab" / "images" / "binance_sim" / "sim.py"
KEYS = {
    "mainnet": ("mainKey" + secrets.token_hex(12), "mainSecret" + secrets.token_hex(16)),
    "testnet": ("testKey" + secrets.token_hex(12), "testSecret" + secrets.token_hex(16)),
}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    """A loopback port free at this moment: for a URL nothing listens on, or a service that must be told
    its port (a process that can bind port 0 and say which port it got should do that instead)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimProcess:
    def __init__(self, tmp, **extra_env):
        """`extra_env`: more SIM_* settings, e.g. SIM_SEED="7", SIM_WALK_INTERVAL_S="0.05"."""
        self.log = tmp / "sim.log"
        # port 0: the simulator binds what the kernel picks and names it in its START line (a port
        # probed here and bound there can be taken in between by a test running beside this one)
        env = {**os.environ, "SIM_BIND_HOST": "127.0.0.1", "SIM_MAINNET_PORT": "0", "SIM_TESTNET_PORT": "0",
               "SIM_CONTROL_PORT": "0", **extra_env}
        for name, (key, secret) in KEYS.items():
            env[f"SIM_{name.upper()}_API_KEY"], env[f"SIM_{name.upper()}_API_SECRET"] = key, secret
        self.proc = subprocess.Popen([sys.executable, "-u", str(SIM)], env=env, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT)
        self.ports = self._started(deadline=time.monotonic() + 10)

    def _started(self, deadline):
        """The ports from the simulator's START line, once it answers on its control port."""
        while time.monotonic() < deadline and self.proc.poll() is None:
            start = next((line for line in self.log.read_text().splitlines()
                          if line.startswith("{") and '"event": "START"' in line), None)
            if start:
                fields = json.loads(start)
                ports = {**fields["ports"], "control": fields["control_port"]}
                self.ports = ports
                try:
                    if self.ctl("GET", "/_sim/healthz")[0] == 200:
                        return ports
                except OSError:
                    pass
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("simulator did not start:\n" + self.log.read_text())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)

    def url(self, personality="testnet"):
        return f"http://127.0.0.1:{self.ports[personality]}/fapi"

    def ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports['control']}{path}", data=data, method=method)
        try:
            with NO_PROXY.open(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def faults(self, *names):
        status, state = self.ctl("PUT", "/_sim/faults", {"faults": list(names)})
        assert status == 200, state
        return state

    def seed(self, **spec):
        status, order = self.ctl("POST", "/_sim/orders", {"personality": "testnet", "symbol": "BTCUSDT",
                                                          "side": "BUY", "quantity": "0.01", "price": "50000",
                                                          **spec})
        assert status == 200, order
        return order

    def market(self, **spec):
        """POST /_sim/market (move the mark, set the book, drive the seeded walk); the new market and its fills."""
        status, body = self.ctl("POST", "/_sim/market", spec)
        assert status == 200, body
        return body

    def client(self, personality="testnet", key=None, secret=None, timeout=5):
        """An unmodified python-binance client pointed at this simulator by configuration."""
        from binance.client import Client

        k, s = KEYS[personality]
        c = Client(key or k, secret or s, ping=False, testnet=personality == "testnet",
                   requests_params={"timeout": timeout})
        c.FUTURES_URL = self.url("mainnet")
        c.FUTURES_TESTNET_URL = self.url("testnet")
        c.session.trust_env = False  # never route loopback traffic through an environment proxy
        return c


@pytest.fixture(scope="module")
def sim_server(tmp_path_factory):
    """The Binance simulator as a local process (no lab needed)."""
    server = SimProcess(tmp_path_factory.mktemp("binance_sim"))
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server):
    """The simulator, reset before and after the test (a reset also releases held requests)."""
    assert sim_server.ctl("POST", "/_sim/reset")[0] == 200
    yield sim_server
    sim_server.ctl("POST", "/_sim/reset")


# ---------------------------------------------------------------- our Binance modules, in-process

def assert_no_secrets(text):
    """No lab key, secret or request signature in `text`."""
    for needle in (*KEYS["testnet"], *KEYS["mainnet"]):
        assert needle not in text
    assert not re.search(r"signature=[0-9a-f]{16}", text)


def module_params(mod, sim, **over):
    """A module's parameters as AnsibleModule hands them over (defaults applied), for the testnet personality."""
    p = {name: opt.get("default") for name, opt in mod.argument_spec().items()}
    key, secret = KEYS["testnet"]
    p.update(futures_url=sim.url(), testnet=True, api_key=key, api_secret=secret, timeout=2.0)
    p.update(over)
    return p


def run_in_process(mod, sim, check=False, **over):
    """(result, failure line or None) of a Binance module's logic, checked for leaked secrets."""
    p, _dummy = mod.effective_params(module_params(mod, sim, **over), set())
    assert mod.check_own_params(p) is None
    result, failure = mod.run(p, check)
    assert_no_secrets(json.dumps(result) + str(failure))
    assert failure is None or "\n" not in failure
    return result, failure
