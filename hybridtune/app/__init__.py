"""The counselor people talk to: chat engine with the safety layer (engine.py), terminal chat
(terminal.py, `hybridtune chat`) and web chat (web.py + static/, `hybridtune serve`)."""
