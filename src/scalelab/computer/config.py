"""`ComputerConfig`: every knob of the computer-use stage and commands, with the smoke and tiny sizes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ComputerConfig:
    """What the computer stage runs, and how big."""

    tasks: str = "suite"  # "suite", "smoke", "desktop" or comma-separated MiniWoB task names
    backend: str = "miniwob"  # "miniwob" (headless Chromium) or "desktop" (Xvfb + xdotool)
    episodes: int = 3  # evaluation episodes per task and split
    max_steps: int = 12  # step limit per episode (enforced inside the sandbox)
    browsers: int = 1  # sandboxed computers evaluating agents at once (2 on 2 cores: ~1.25x sooner)
    sandbox: bool = True  # run the computer under bubblewrap (loopback-only network, read-only root)
    agents: list[str] = field(default_factory=lambda: ["oracle", "random", "pixel", "api-stub"])
    attack: bool = True  # also run every task's prompt-injected variant (AgentDojo metrics)
    defence: bool = True  # also run the attacked variants with the injection guard on
    train_split_agents: list[str] | None = None  # agents also scored on train seeds (None: every agent)
    attack_agents: list[str] | None = None  # agents also run on the attacked variants (None: every agent)
    defence_agents: list[str] | None = None  # agents also run attacked with the guard on (None: every agent)
    demos_per_task: int = 10  # oracle demonstrations per task for the pixel agent (train seeds)
    pixel_width: int = 32  # conv channels of the pixel policy (its size)
    pixel_seconds: float = 600.0  # wall-clock budget of behaviour cloning
    pixel_batch: int = 32
    max_images: int = 3  # screenshots kept in the api agent's conversation
    demo_curve: list[int] = field(default_factory=list)  # demos per task for the scaling curve (bench only)
    width_curve: list[int] = field(default_factory=list)  # policy widths for the scaling curve (bench only)
    curve_seconds: float = 120.0  # training budget of each curve point
    seed: int = 0

    @classmethod
    def smoke(cls) -> ComputerConfig:
        """A few tasks, one episode each, a toy pixel agent: seconds."""
        return cls(tasks="smoke", episodes=1, max_steps=8, demos_per_task=2, pixel_width=8, pixel_seconds=5.0,
                   defence=False)

    @classmethod
    def tiny(cls) -> ComputerConfig:
        """The whole suite, one held-out episode per task for every agent; the attacked variants for the agents
        whose actions an injection can change (random: the chance-hit control; pixel: the learned screen
        reader; the oracle and the API stub act on the DOM by script, and `computer bench` attacks them too);
        train seeds for the pixel agent only, the guard on the random agent only (where attacks land); a pixel
        agent from 2 demonstrations per task and 20 s of training."""
        return cls(tasks="suite", episodes=1, max_steps=8, demos_per_task=2, pixel_width=16, pixel_seconds=20.0,
                   train_split_agents=["pixel"], attack_agents=["random", "pixel"], defence_agents=["random"],
                   browsers=2)
