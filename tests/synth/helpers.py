"""A schema-aware fake responder for the synth stages: valid, varied replies keyed by prompt content."""
from __future__ import annotations

import hashlib
import json

WORDS = ("harbor lantern orchard violin glacier meadow circuit pepper saddle quartz falcon timber "
         "compass velvet marble thunder pencil canyon biscuit rocket willow ember tundra cobalt").split()


def varied(req, n: int = 12) -> str:
    """Different text for a different prompt or sample seed, so embeddings differ."""
    h = hashlib.sha256((json.dumps(req.messages) + str(req.seed)).encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in h[:n])


def responder(req, *, naturalness: int = 8, distortions_present: bool = True) -> str:
    name = req.schema_name
    if name == "PersonaDraft":
        return json.dumps({"name": "Sam", "narrative": f"Sam is a person. {varied(req)}."})
    if name == "PersonaCheck":
        return json.dumps({"mismatches": [], "consistent": True})
    if name == "Naturalness":
        return json.dumps({"score": naturalness, "reason": "ok"})
    if name == "ScenarioDraft":
        return json.dumps({"summary": "A hard week.", "scenario": f"I keep thinking about it. {varied(req)}."})
    if name == "DistortionCheck":
        text = req.messages[-1]["content"]
        ids = [line.split(":")[0].strip("- ").strip() for line in text.splitlines() if line.startswith("- ")]
        return json.dumps({"items": [{"distortion": i, "present": distortions_present, "evidence": "x"} for i in ids]})
    if name == "TechniqueLabels":
        return json.dumps({"turns": []})
    if name == "Dialogue":
        turns = [{"speaker": s, "text": f"{s} says {varied(req, 4)}"} for s in ["counselor", "client"] * 3]
        turns.append({"speaker": "counselor", "text": "Good work today. Goodbye, see you next week."})
        return json.dumps({"turns": turns})
    system = " ".join(m["content"] for m in req.messages if m["role"] == "system")  # incl. the turn note
    if "say goodbye" in system:
        return "Thank you, that helps. Goodbye, see you next week."
    return f"Tell me more about that. {varied(req, 5)}."
