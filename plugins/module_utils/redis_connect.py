# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""How the modules reach Redis: a URL, or the Redis container's IP (as `docker exec
quantum_redis redis-cli` would), with every call bounded by a timeout and no retries."""
from __future__ import annotations

import traceback

from ansible_collections.quantum.runbooks.plugins.module_utils.docker_sdk import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    DockerException,
    docker_client,
)
from ansible_collections.quantum.runbooks.plugins.module_utils.missing_library import missing_library
from ansible_collections.quantum.runbooks.plugins.module_utils.redis_streams import (
    ContainerUnavailable,
    one_line,
    resolve_container_url,
)

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None
except ImportError:
    redis = None
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()

# The options every Redis-using module shares.
CONNECTION_SPEC = dict(
    url=dict(type="str"),
    container=dict(type="str", default="quantum_redis"),
    port=dict(type="int", default=6379),
    timeout=dict(type="float", default=3.0),
    docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
)


def fail_without_libraries(module):
    """Fail with Ansible's usual message when redis (or, without a url, the Docker SDK) is missing."""
    if not HAS_REDIS:
        module.fail_json(msg=missing_library("redis"), exception=REDIS_IMPORT_ERROR)
    if not module.params["url"] and not HAS_DOCKER:
        module.fail_json(msg=missing_library("docker", "needed when url is not set"),
                         exception=DOCKER_IMPORT_ERROR)


def redis_client(url, timeout):
    """A client that never retries and bounds every connect and read by ``timeout``."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def container_target(params):
    """(url, container_state, error) for O(container) mode; never raises."""
    try:
        client = docker_client(params["docker_host"], params["timeout"])
    except DockerException as err:
        return None, None, one_line(f"cannot reach Docker at {params['docker_host']}: {err}")
    try:
        url = resolve_container_url(params["container"], params["port"], client)
        return url, "running", None
    except ContainerUnavailable as err:
        return None, err.state, one_line(str(err))
    except (DockerException, OSError) as err:
        return None, None, one_line(f"cannot inspect container {params['container']} "
                                    f"via {params['docker_host']}: {err}")
    finally:
        client.close()
