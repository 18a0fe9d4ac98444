"""Real data: ingest real counseling transcripts, clean, scrub PII, dedup, filter, segment, annotate.

Modules: formats (readers), captions (VTT/SRT turns + speaker attribution), clean, pii
(reusable `Scrubber`), filters, dedup, segment, annotate (LLM steps), report, stage (`run`,
`ingest`), cli (`hybridtune ingest`).
"""
