"""Draws the comparison chart: msgs/s per tool, one panel per corpus, grouped by latency.

Usage: python3 chart.py RESULTS.json OUT.png   (RESULTS.json as written by the `compare` bin)

Runs marked incorrect by the harness's verification get a hatched bar and an "x" label, so a
fast but lossy copy never reads as a win.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {
    "mailferry": "#1f77b4",
    "mbsync": "#ff7f0e",
    "doveadm": "#2ca02c",
    "imapsync": "#9467bd",
}


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    results = data["results"]
    corpora = list(dict.fromkeys(r["corpus"] for r in results))
    tools = list(dict.fromkeys(r["tool"] for r in results))
    if not results:
        sys.exit("no results to draw")
    fig, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 4.5), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        rows = [r for r in results if r["corpus"] == corpus]
        latencies = sorted({r["latency_ms"] for r in rows})
        width = 0.8 / max(len(tools), 1)
        for i, tool in enumerate(tools):
            for j, latency in enumerate(latencies):
                r = next((r for r in rows if r["tool"] == tool and r["latency_ms"] == latency), None)
                if r is None:
                    continue
                rate = r["messages"] / max(r["wall_secs"], 1e-9)
                x = j + (i - (len(tools) - 1) / 2) * width
                ax.bar(
                    x,
                    rate,
                    width,
                    color=COLOURS.get(tool, "grey"),
                    hatch=None if r["correct"] else "//",
                    edgecolor="black" if not r["correct"] else None,
                    label=tool if j == 0 else None,
                )
                mark = "" if r["correct"] else " x"
                ax.annotate(f"{rate:.0f}{mark}", (x, rate), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(latencies)))
        ax.set_xticklabels([f"{ms} ms RTT" for ms in latencies])
        first = rows[0]
        ax.set_title(f"{corpus}: {first['messages']} msgs, {first['bytes'] / 1e6:.0f} MB")
        ax.set_ylabel("messages / s (higher is better)")
        ax.legend(fontsize=8)
    info = data.get("info", {})
    fig.suptitle(
        "IMAP to IMAP copy, Dovecot 2.3, TLS off for all tools; hatched x = verification failed\n"
        f"{info.get('machine', '')}, scale {info.get('scale', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
