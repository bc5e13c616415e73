"""The whole machine's CPU ticks (Linux /proc/stat): how busy the host was beside a benchmark."""


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot; busy is all but idle and iowait."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)
