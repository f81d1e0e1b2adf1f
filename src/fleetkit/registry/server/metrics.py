"""A tiny Prometheus text exposition: request counts and latency, bytes, uploads, RSS."""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict

__all__ = ["Metrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(_BUCKETS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.bytes_sent = 0
        self.bytes_received = 0
        self.tokens_issued = 0
        self.uploads_in_progress = 0
        self.client_disconnects = 0
        self.connections_refused = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        buckets = self.latency_buckets[route]
        for i, bound in enumerate(_BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        self.latency_sum[route] += seconds
        self.latency_count[route] += 1

    def render(self) -> str:
        out = [
            "# HELP fleetkit_registry_http_requests_total HTTP requests by method, route, status.",
            "# TYPE fleetkit_registry_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(
                f'fleetkit_registry_http_requests_total{{method="{method}",route="{route}",code="{status}"}} {n}'
            )
        out += [
            "# HELP fleetkit_registry_http_request_duration_seconds Request latency by route.",
            "# TYPE fleetkit_registry_http_request_duration_seconds histogram",
        ]
        for route in sorted(self.latency_count):
            for bound, n in zip(_BUCKETS, self.latency_buckets[route], strict=True):
                out.append(
                    f'fleetkit_registry_http_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} {n}'
                )
            out.append(
                f'fleetkit_registry_http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {self.latency_count[route]}'
            )
            out.append(
                f'fleetkit_registry_http_request_duration_seconds_sum{{route="{route}"}} {self.latency_sum[route]:.6f}'
            )
            out.append(
                f'fleetkit_registry_http_request_duration_seconds_count{{route="{route}"}} {self.latency_count[route]}'
            )
        out += [
            "# HELP fleetkit_registry_bytes_sent_total Response body bytes sent.",
            "# TYPE fleetkit_registry_bytes_sent_total counter",
            f"fleetkit_registry_bytes_sent_total {self.bytes_sent}",
            "# HELP fleetkit_registry_bytes_received_total Blob bytes received.",
            "# TYPE fleetkit_registry_bytes_received_total counter",
            f"fleetkit_registry_bytes_received_total {self.bytes_received}",
            "# HELP fleetkit_registry_tokens_issued_total Tokens issued by the token service.",
            "# TYPE fleetkit_registry_tokens_issued_total counter",
            f"fleetkit_registry_tokens_issued_total {self.tokens_issued}",
            "# HELP fleetkit_registry_uploads_in_progress Upload requests being received.",
            "# TYPE fleetkit_registry_uploads_in_progress gauge",
            f"fleetkit_registry_uploads_in_progress {self.uploads_in_progress}",
            "# HELP fleetkit_registry_client_disconnects_total Requests whose client went away "
            "before the response was complete (logged as status 499).",
            "# TYPE fleetkit_registry_client_disconnects_total counter",
            f"fleetkit_registry_client_disconnects_total {self.client_disconnects}",
            "# HELP fleetkit_registry_connections_refused_total Connections refused at the "
            "connection limit (503).",
            "# TYPE fleetkit_registry_connections_refused_total counter",
            f"fleetkit_registry_connections_refused_total {self.connections_refused}",
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
            "# TYPE process_resident_memory_bytes gauge",
            f"process_resident_memory_bytes {_rss_bytes()}",
            "# HELP process_start_time_seconds Start time of the process since unix epoch.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.started:.3f}",
        ]
        return "\n".join(out) + "\n"
