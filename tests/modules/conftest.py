"""The local Binance simulator's fixtures, and the lab's for the integration tests on its Redis."""
from lab_fixtures import lab, lab_session
from sim_process import sim, sim_server

__all__ = ["lab", "lab_session", "sim", "sim_server"]
