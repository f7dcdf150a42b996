"""`curaway demo`: walk a running service through a whole case, live, in the terminal.

The demo is an HTTP client of the service and nothing more (it imports no domain code): it
gets an ops token (`--token`, else `POST /auth/dev-token`, which exists only in
`ENV=development`), creates a patient and a case, opens the case's progress stream
(`GET /cases/{id}/events`, server-sent events) *before* uploading, uploads every PDF of a
directory, and shows each document's progress as one line with a stage bar:

    discharge_summary_cardiology.pdf  [#####---] 5/8 fhir validated

When stdout is a terminal the block of lines is redrawn in place (ANSI cursor movement);
otherwise a line is appended each time a document's line changes, so logs and pipes stay
readable. It stops when every accepted document is in a final state (analyzed, needs OCR,
failed) or the timeout passes, then prints the case's requirement checklist. The stream drives
the display; as a safety net, documents still in progress are also read from
`GET /documents/{id}` every few seconds, so a late or lost event cannot stall the demo.

Exit status: 0 when the demo ran to the end (a refused upload, a document that needs OCR or
whose analysis failed is an *outcome* the demo shows, not an error of the demo); 1 when it could
not run (service unreachable, no dev-token route and no `--token`, token refused, no PDFs,
an unexpected API answer, or the timeout).
"""

from app.demo.run import DEFAULT_DOCUMENTS, DemoOptions, run_demo

__all__ = ["DEFAULT_DOCUMENTS", "DemoOptions", "run_demo"]
