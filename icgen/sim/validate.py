"""The netlist validation report: parse an answer, check topology, units and ranges, then simulate it.

    report = validate_text(answer_text, tech)   # report.valid, report.problems, report.result
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.design import VARIABLE_BY_KEY, Design
from ..core.parse import ParsedAnswer, Problem, parse_answer
from ..core.status import Status
from ..core.tech import Technology
from ..core.units import format_answer
from .simulate import SimResult, simulate


@dataclass
class ValidationReport:
    """Every problem found, the design if one was read, and its simulation when it could be simulated."""

    problems: list[Problem] = field(default_factory=list)
    design: Design | None = None
    result: SimResult | None = None

    @property
    def valid(self) -> bool:
        """A complete, in-range netlist of the template that simulates to an amplifier with a healthy operating point
        (no railed output, no device in triode or off)."""
        return not self.problems and self.result is not None and self.result.status == Status.OK

    def to_dict(self) -> dict:
        return {"valid": self.valid, "problems": [{"where": p.where, "message": p.message} for p in self.problems],
                "design": self.design.to_dict() if self.design else None,
                "simulation": self.result.to_dict() if self.result else None}


def range_problems(design: Design, tech: Technology) -> list[Problem]:
    """One problem per variable outside the technology's bounds, printed in the answer's units."""
    problems = []
    for key, value in design.to_dict().items():
        low, high = tech.bounds[key]
        if not (low <= value <= high):
            unit = VARIABLE_BY_KEY[key].answer_unit
            shown = format_answer(value, unit) if 1e-18 < abs(value) < 1e6 else f"{value:g}"
            problems.append(Problem(key, f"{shown} is outside {tech.name}'s range "
                                         f"{format_answer(low, unit)} .. {format_answer(high, unit)}"))
    return problems


def validate_parsed(parsed: ParsedAnswer, tech: Technology, testbench: str = "feedback",
                    run_simulation: bool = True) -> ValidationReport:
    """Check a parsed answer against the technology and, if it is clean, simulate it."""
    report = ValidationReport(problems=list(parsed.problems), design=parsed.design)
    if parsed.design is not None:
        report.problems += range_problems(parsed.design, tech)
    if run_simulation and parsed.design is not None and not report.problems:
        report.result = simulate(parsed.design, tech, testbench=testbench)
        if report.result.status == Status.FAILED:
            report.problems.append(Problem("simulation", f"ngspice failed: {report.result.reason}"))
        elif report.result.status == Status.NOT_AMPLIFIER:
            report.problems.append(Problem("simulation", f"not an amplifier: {report.result.reason}"))
        elif report.result.health is not None and report.result.health.flags:
            report.problems.append(Problem("operating point", "unhealthy: " + "; ".join(report.result.health.flags)))
    return report


def validate_text(text: str, tech: Technology, testbench: str = "feedback",
                  run_simulation: bool = True) -> ValidationReport:
    """Parse and validate an answer in the original format."""
    return validate_parsed(parse_answer(text), tech, testbench, run_simulation)
