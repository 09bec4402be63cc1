"""The Binance simulator as a local process on free loopback ports, for tests that
need an exchange they can break (faults via its control API) without the lab."""
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

SIM = Path(__file__).resolve().parents[1] / "lab" / "images" / "binance_sim" / "sim.py"
KEYS = {
    "mainnet": ("mainKey" + secrets.token_hex(12), "mainSecret" + secrets.token_hex(16)),
    "testnet": ("testKey" + secrets.token_hex(12), "testSecret" + secrets.token_hex(16)),
}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimProcess:
    def __init__(self, tmp, **extra_env):
        """`extra_env`: more SIM_* settings, e.g. SIM_SEED="7", SIM_WALK_INTERVAL_S="0.05"."""
        self.ports = {"mainnet": free_port(), "testnet": free_port(), "control": free_port()}
        self.log = tmp / "sim.log"
        env = {**os.environ, "SIM_BIND_HOST": "127.0.0.1", "SIM_MAINNET_PORT": str(self.ports["mainnet"]),
               "SIM_TESTNET_PORT": str(self.ports["testnet"]), "SIM_CONTROL_PORT": str(self.ports["control"]),
               **extra_env}
        for name, (key, secret) in KEYS.items():
            env[f"SIM_{name.upper()}_API_KEY"], env[f"SIM_{name.upper()}_API_SECRET"] = key, secret
        self.proc = subprocess.Popen([sys.executable, "-u", str(SIM)], env=env, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.ctl("GET", "/_sim/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
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
    p, _ = mod.effective_params(module_params(mod, sim, **over), set())
    assert mod.check_own_params(p) is None
    result, failure = mod.run(p, check)
    assert_no_secrets(json.dumps(result) + str(failure))
    assert failure is None or "\n" not in failure
    return result, failure
