"""Synthetic data: quota-sampled personas, scenarios and multi-turn sessions.

Stages (declared in hybridtune/stages.py): personas.run -> scenarios.run -> sessions.run, writing
runs/<name>/personas/personas.jsonl, scenarios/scenarios.jsonl, synth/sessions.jsonl and
synth/synth_report.md. Library functions for other stages (e.g. held-out evaluation sets
with their own seed): personas.make_personas, scenarios.make_scenarios, sessions.make_sessions.
Domain data: attributes.yaml (attributes, quotas, session plan) and prompts/synth_*.yaml.
"""
