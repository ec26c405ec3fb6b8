"""Print the count, p50, p99 and max of each tag of an HdrHistogram interval log as JSON.

Reads the log with the Python `hdrhistogram` package (its HistogramLogReader), independent of
volley's own reader, and adds up the intervals of each tag. Values stay in the log's unit
(microseconds for volley). Exits with 3 when the package is not installed.
"""

import json
import sys

try:
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader
except ImportError:
    print("the Python package hdrhistogram is not installed (pip install hdrhistogram)",
          file=sys.stderr)
    sys.exit(3)

# One hour in microseconds, the range of volley's histograms.
HIGHEST = 3_600_000_000


def main(path):
    reader = HistogramLogReader(path, HdrHistogram(1, HIGHEST, 3))
    sums = {}
    while True:
        interval = reader.get_next_interval_histogram()
        if interval is None:
            break
        tag = interval.get_tag() or ""
        if tag not in sums:
            sums[tag] = HdrHistogram(1, HIGHEST, 3)
        sums[tag].add(interval)
    reader.close()
    result = {
        tag: {
            "count": histogram.get_total_count(),
            "p50": histogram.get_value_at_percentile(50.0),
            "p99": histogram.get_value_at_percentile(99.0),
            "max": histogram.get_max_value(),
        }
        for tag, histogram in sums.items()
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
