"""The lab's fixtures, and the local simulator's (test_binance_sim)."""
from lab_fixtures import fault, lab, lab_keys, lab_session, qt_owns_the_project
from sim_process import sim, sim_server

__all__ = ["fault", "lab", "lab_keys", "lab_session", "qt_owns_the_project", "sim", "sim_server"]
