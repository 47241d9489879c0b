"""``servelab report``: the study's answers as one report (HTML, Markdown, PNG figures and the
Parquet data behind each), one section per question, each section one module ``sec_<key>.py``
behind the interface in :mod:`servelab.analysis.report.section`."""
