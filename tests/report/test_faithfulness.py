"""The report's faithfulness section: the methods drawn on the page, ranked, with their curves."""

from __future__ import annotations

import re

from cnnlab.explain.metrics import METRICS
from cnnlab.report.faithfulness import METHODS_SHOWN
from tests.report.test_report import Elements


def test_the_section_ranks_the_pages_methods_on_every_metric_but_pointing(report):
    start = report.html.index('<section id="faithfulness">')
    html = report.html[start:report.html.index("</section>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    headers = re.findall(r"<th[^>]*>(.*?)</th>", rows[0])
    assert headers == ["rank", "method", *(f"{m.label} {'↑' if m.higher_is_better else '↓'}" for name, m in
                                           METRICS.items() if name != "pointing"), "mean rank"]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows[1:]]
    assert sorted(row[1] for row in cells) == sorted(METHODS_SHOWN)
    assert [row[0] for row in cells] == [str(i) for i in range(1, len(METHODS_SHOWN) + 1)]
    mean_ranks = [float(row[-1]) for row in cells]
    assert mean_ranks == sorted(mean_ranks)
    for column in range(2, len(headers) - 1):  # one best per column at least, each value a number ± spread
        assert any("★" in row[column] for row in cells)
        assert all(re.fullmatch(r"-?[\d.]+ ± [\d.]+( ★)?", row[column]) for row in cells), headers[column]
    assert "randomisation over 2 stages" in html and "ROAD at 20, 50, 80%" in html
    pictures = [img["alt"] for img in Elements(html).all("img")]
    assert pictures == ["deletion and insertion curves of each method"]
    assert (report.run_dir / "report_files" / "faithfulness-curves.png").is_file()
