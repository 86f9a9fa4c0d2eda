"""Draws the comparison chart: msgs/s per tool, one panel per corpus, grouped by latency.

Usage: python3 chart.py RESULTS.json OUT.png   (RESULTS.json as written by the `compare` bin)

Every scenario draws the same way: the `servers` scenario has one panel per corpus; `big-folder`
one per folder size (its corpora are `inbox-<count>`), so the two sizes of a tool sit side by
side; `transfers` one per transfer and corpus (its rows carry a `transfer` field, and its tools
are labels such as "doveadm import" or "cp -a").

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
    "mailferry IMAP→IMAP": "#aec7e8",
    "cp -a": "#7f7f7f",
}


def colour(tool):
    """A tool's colour; "doveadm import"/"doveadm backup" take doveadm's."""
    return COLOURS.get(tool, COLOURS.get(tool.split()[0], "grey"))


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    results = data["results"]
    if not results:
        sys.exit("no results to draw")

    def panel_of(r):
        return (r.get("transfer", ""), r["corpus"])

    panels = list(dict.fromkeys(panel_of(r) for r in results))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        rows = [r for r in results if panel_of(r) == panel]
        tools = list(dict.fromkeys(r["tool"] for r in rows))
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
                    color=colour(tool),
                    hatch=None if r["correct"] else "//",
                    edgecolor="black" if not r["correct"] else None,
                    label=tool if j == 0 else None,
                )
                mark = "" if r["correct"] else " x"
                ax.annotate(f"{rate:.0f}{mark}", (x, rate), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(latencies)))
        ax.set_xticklabels([f"{ms} ms RTT" for ms in latencies])
        first = rows[0]
        transfer, corpus = panel
        prefix = f"{transfer}, " if transfer else ""
        ax.set_title(f"{prefix}{corpus}: {first['messages']} msgs, {first['bytes'] / 1e6:.0f} MB")
        ax.set_ylabel("messages / s (higher is better)")
        ax.legend(fontsize=8)
    info = data.get("info", {})
    what = {
        "big-folder": "One folder at two sizes, IMAP to IMAP",
        "transfers": "mbox to IMAP import and IMAP to Maildir export",
    }.get(info.get("scenario", "servers"), "IMAP to IMAP copy")
    fig.suptitle(
        f"{what}, Dovecot 2.3, TLS off for all tools; hatched x = verification failed\n"
        f"{info.get('machine', '')}, scale {info.get('scale', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
