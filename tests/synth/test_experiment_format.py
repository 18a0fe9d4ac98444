"""The experiment as the paper ran it (issue 16): every attitude a scenario can carry has its own
client instruction, the distortion list holds the paper's items, the CBT protocol reaches the
counselor prompt, the synthetic counselor and the CTRS judge, and the opening speaker is the same
in training data and in simulated evaluation."""
from __future__ import annotations

import asyncio

import pytest

from hybridtune.domain import load_domain
from hybridtune.records import Message, ModelEntry, Persona, Scenario, Session


def generated_attitudes(domain) -> set[str]:
    """What the scenario generators can emit: the persona attribute, crisis scenarios, the safety set."""
    from hybridtune.evaluate.scenarios import CRISIS_ATTITUDE
    from hybridtune.safety.score import load_crisis_scenarios
    from hybridtune.synth.sampling import load_attribute_spec

    spec = load_attribute_spec(domain)
    values = domain.attributes["attributes"][spec.attitude_attribute]
    out = set(values if isinstance(values, list) else dict(values))
    if domain.name == "cbt":
        out |= {CRISIS_ATTITUDE} | {s.attitude for s in load_crisis_scenarios()}
    return out


@pytest.mark.parametrize("name", ["cbt", "sales_coach"])
def test_every_generated_attitude_maps_to_its_own_instruction(name):
    dom = load_domain(name)
    attitudes = generated_attitudes(dom)
    assert {"positive", "neutral", "resistant"} <= attitudes
    assert attitudes <= set(dom.attitudes), attitudes - set(dom.attitudes)  # each has its own entry
    instructions = {a: dom.attitude_instruction(a) for a in attitudes}
    assert all(instructions.values()) and len(set(instructions.values())) == len(attitudes)  # none shares another's
    # a free-text attitude from a scenario file is played as written, not as neutral
    assert "anxious but hopeful" in dom.attitude_instruction("anxious but hopeful")


def test_the_simulated_client_gets_the_instruction_of_its_attitude(fake_ctx):
    from hybridtune.evaluate.simulate import patient_prompt

    cm, _ = fake_ctx()
    with cm as ctx:
        for att in generated_attitudes(ctx.domain):
            msgs, tag = patient_prompt(ctx, Scenario(id="s", summary="work stress", scenario="My boss shouted.", attitude=att))
            assert ctx.domain.attitude_instruction(att) in msgs[0]["content"], att
        own = Scenario(id="c", summary="x", scenario="y", attitude="negative", meta={"attitude_instruction": "Say little."})
        assert "Say little." in patient_prompt(ctx, own)[0][0]["content"]  # a CACTUS instruction wins


def test_distortion_list_holds_the_papers_items():
    dom = load_domain("cbt")
    names = {d.name for d in dom.distortions}
    paper = {"All-or-Nothing Thinking", "Overgeneralization", "Mental Filter", "Disqualifying the Positive",
             "Jumping to Conclusions", "Magnification (Catastrophizing) or Minimization", "Emotional Reasoning",
             "Should Statements", "Labeling and Mislabeling", "Personalization"}
    assert paper <= names
    forms = {d.name for d in dom.distortions if getattr(d, "parent", None) == "jumping_to_conclusions"}
    assert forms == {"Mind Reading", "Fortune Telling"}


def test_cbt_protocol_reaches_counselor_prompt_synthetic_counselor_and_ctrs_judge(fake_ctx):
    from hybridtune.synth.sampling import load_attribute_spec

    dom = load_domain("cbt")
    steps = dom.protocol.steps
    assert [s.id for s in steps] == ["identify", "challenge", "reframe"] and all(len(s.questions) >= 4 for s in steps)
    for s in steps:
        assert s.name in dom.system_prompt and s.questions[0] in dom.system_prompt
    ctrs = dom.prompt("eval_judge_ctrs").render(transcript="t", scenario="s", protocol=dom.protocol)[0]["content"]
    assert all(s.name in ctrs for s in steps)
    phases = load_attribute_spec(dom).session_plan
    assert {p.step for p in phases if p.step} == {"identify", "challenge", "reframe"}
    cm, fake = fake_ctx(responder=lambda req: "What went through your mind?")
    with cm as ctx:
        asyncio.run(roleplay(ctx, exchanges=5))
    sys_prompts = [r.messages[-1]["content"] for r in fake.requests if "Current phase" in r.messages[-1]["content"]]
    for s in steps:  # each step's name and one of its bank's questions reach the synthetic counselor
        assert any(s.name in p and any(q in p for q in s.questions) for p in sys_prompts), s.id


@pytest.mark.parametrize("opens", ["client", "counselor"])
def test_roleplay_prompts_extend_each_roles_previous_prompt(fake_ctx, opens):
    """Per-turn guidance comes after the dialogue (the prompt's `turn` note): each role's prompt,
    less that note, is the start of the role's next prompt, so the embedded backend reads only the
    new turns and the note (llm/prefix.py), not the whole conversation again."""
    cm, fake = fake_ctx(f"opens={opens}", responder=lambda req: "What went through your mind?")
    with cm as ctx:
        asyncio.run(roleplay(ctx, exchanges=4))
    for role in ("counselor", "patient"):
        prompts = [r.messages for r in fake.requests if ("role-playing a client" in r.messages[0]["content"])
                   == (role == "patient")]
        assert len(prompts) >= 4
        for a, b in zip(prompts[1:], prompts[2:]):  # the first is the one with the opening cue
            head = a[:-1] if a[-1]["role"] == "system" else a
            assert b[: len(head)] == head, role
    notes = [r.messages[-1]["content"] for r in fake.requests if r.messages[-1]["role"] == "system"]
    assert sum("Current phase" in n for n in notes) >= 5 and any("say goodbye" in n for n in notes)


SCEN = Scenario(id="sc", summary="Deadline worries", attitude="resistant", scenario="I missed a deadline at work.",
                persona=Persona(id="p", attributes={"personality": "reserved"}, narrative="A nurse in her thirties."))


async def roleplay(ctx, exchanges=2):
    from hybridtune.synth.sampling import load_attribute_spec
    from hybridtune.synth.sessions import RolePlay, SessionPlan

    plan = SessionPlan(index=0, scenario_id=SCEN.id, techniques=[ctx.domain.techniques[0].id], exchanges=exchanges)
    dialogue, _ = await RolePlay(ctx, plan, SCEN, "", load_attribute_spec(ctx.domain).session_plan).run()
    return dialogue


@pytest.mark.parametrize("opens", ["client", "counselor"])
def test_opening_speaker_is_the_same_in_training_and_simulation(fake_ctx, opens):
    from hybridtune.curate.mix import unit_pool
    from hybridtune.evaluate.simulate import converse
    from hybridtune.registry import counselor_llm

    def responder(req):
        return "I feel stuck." if req.messages[0]["content"].startswith("You are role-playing a client") else "Tell me more."

    first = {"client": "user", "counselor": "assistant"}[opens]
    cm, fake = fake_ctx(f"opens={opens}", "evaluate.max_turns=2", responder=responder)
    with cm as ctx:
        synthetic = asyncio.run(roleplay(ctx))
        real = Session(id="r", source="real", messages=[Message(role="assistant", content="Welcome, what brings you?"),
                                                        Message(role="user", content="Work."),
                                                        Message(role="assistant", content="Tell me more.")])
        units = unit_pool([real, Session(id="s", source="synthetic", messages=synthetic)], "both", opens=opens)
        entry = ModelEntry(variant="base", backend="fake", model="fake")
        sim = asyncio.run(converse(ctx, SCEN, "base", counselor_llm(ctx, entry), "x"))
    assert synthetic[0].role == first
    assert [m for m in sim.messages if m.role != "system"][0].role == first and sim.meta["opens"] == opens
    assert sum(m.role == "assistant" for m in sim.messages) == 2  # evaluate.max_turns counselor turns
    # the mixed training units open like the simulation (a real session's greeting is dropped when the client opens)
    session_units = [u for u in units if u.meta.get("unit") != "qa"]
    assert all(u.messages[0].role == first for u in session_units if u.source == "synthetic")
    assert units[0].messages[0].role == ("user" if opens == "client" else "assistant")
