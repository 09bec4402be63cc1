# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The Docker SDK import guard shared by the modules that talk to the Docker API."""
from __future__ import annotations

import traceback

# What the modules import from here (NotFound only re-exported).
__all__ = ["DOCKER_IMPORT_ERROR", "HAS_DOCKER", "DockerException", "NotFound", "docker", "docker_client"]

try:
    import docker
    from docker.errors import DockerException, NotFound
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        """Stand-in so `except DockerException` stays valid; modules fail first on HAS_DOCKER."""

    class NotFound(DockerException):
        pass


def docker_client(base_url, timeout):
    """A Docker API client for `base_url` (e.g. unix:///var/run/docker.sock)."""
    return docker.DockerClient(base_url=base_url, timeout=timeout)
