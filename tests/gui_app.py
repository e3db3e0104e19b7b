"""A small Tk app that logs every input it receives, for the desktop executor's tests.

Run as ``python tests/gui_app.py LOG`` (a subprocess, so events really travel through the X server). Each
event is one JSON line appended to LOG and flushed at once. The first line, ``{"event": "ready", ...}``,
gives every widget's screen box (``x``, ``y``, ``w``, ``h`` from ``winfo_rootx/rooty/width/height``).

Events: ``click`` (a button's command, with ``widget``), ``text`` (the entry's whole value after every
change), ``scroll`` (``direction`` up/down/left/right, over the pad), ``press``/``release`` (button 1 on
the pad, root coordinates), ``double`` and ``right`` (on the pad, root coordinates), ``drag`` (a button-1
press and release on the pad that moved at least 20 pixels: ``from`` and ``to``). Every record has ``t``
(``time.monotonic()`` when it was logged).
"""

from __future__ import annotations

import json
import sys
import time
import tkinter as tk

WINDOW_POSITION = (40, 60)
WINDOW_SIZE = (900, 620)
BUTTONS = ("Save", "Open", "Cancel")
X11_WHEEL_BUTTONS = {4: ("up", "left"), 5: ("down", "right"), 6: ("left",) * 2, 7: ("right",) * 2}
"""X11 wheel button -> (direction, direction with Shift held). Tk 8.6 reports the horizontal buttons 6/7 as
4/5 with Shift (Tk's convention for horizontal scrolling), so Shift is what tells them apart."""
SHIFT_MASK = 0x1
DRAG_MIN_PIXELS = 20


class LoggingApp:
    def __init__(self, root: tk.Tk, log_path: str) -> None:
        self.root = root
        self.log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the app's lifetime
        self.pressed_at: tuple[int, int] | None = None
        root.title("molmo-agent test app")
        width, height = WINDOW_SIZE
        root.geometry(f"{width}x{height}+{WINDOW_POSITION[0]}+{WINDOW_POSITION[1]}")
        self.widgets: dict[str, tk.Widget] = {}
        row = tk.Frame(root)
        row.pack(side=tk.TOP, pady=20)
        for name in BUTTONS:
            button = tk.Button(row, text=name, width=12, height=2, command=lambda n=name: self.clicked(n))
            button.pack(side=tk.LEFT, padx=30)
            self.widgets[name] = button
        self.text = tk.StringVar(root)
        self.text.trace_add("write", lambda *_: self.log(event="text", value=self.text.get()))
        entry = tk.Entry(root, textvariable=self.text, width=50, font=("DejaVu Sans", 14))
        entry.pack(side=tk.TOP, pady=20)
        self.widgets["Entry"] = entry
        pad = tk.Canvas(root, width=600, height=300, background="#dde")
        pad.pack(side=tk.TOP, pady=20)
        self.widgets["Pad"] = pad
        self.bind_pad(pad)
        root.after(300, self.ready)

    def bind_pad(self, pad: tk.Canvas) -> None:
        pad.bind("<ButtonPress>", self.on_press)
        pad.bind("<ButtonRelease-1>", self.on_release)
        pad.bind("<Double-Button-1>", lambda e: self.log(event="double", at=[e.x_root, e.y_root]))
        pad.bind("<Button-3>", lambda e: self.log(event="right", at=[e.x_root, e.y_root]))
        # Tk 8.7+ turns X11 wheel buttons into MouseWheel events; Tk 8.6 delivers buttons 4-7.
        pad.bind("<MouseWheel>", lambda e: self.wheel("up" if e.delta > 0 else "down"))
        pad.bind("<Shift-MouseWheel>", lambda e: self.wheel("left" if e.delta > 0 else "right"))

    def on_press(self, event: tk.Event) -> None:
        if event.num in X11_WHEEL_BUTTONS:
            self.wheel(X11_WHEEL_BUTTONS[event.num][1 if int(event.state) & SHIFT_MASK else 0])
        elif event.num == 1:
            self.pressed_at = (event.x_root, event.y_root)
            self.log(event="press", at=[event.x_root, event.y_root])

    def on_release(self, event: tk.Event) -> None:
        self.log(event="release", at=[event.x_root, event.y_root])
        start, self.pressed_at = self.pressed_at, None
        end = (event.x_root, event.y_root)
        if start and max(abs(end[0] - start[0]), abs(end[1] - start[1])) >= DRAG_MIN_PIXELS:
            self.log(event="drag", **{"from": list(start), "to": list(end)})

    def wheel(self, direction: str) -> None:
        self.log(event="scroll", direction=direction)

    def clicked(self, name: str) -> None:
        self.log(event="click", widget=name)

    def ready(self) -> None:
        self.root.update_idletasks()
        boxes = {
            name: {"x": w.winfo_rootx(), "y": w.winfo_rooty(), "w": w.winfo_width(), "h": w.winfo_height()}
            for name, w in self.widgets.items()
        }
        self.log(event="ready", widgets=boxes, tk_version=tk.TkVersion)

    def log(self, **record) -> None:
        record["t"] = time.monotonic()
        self.log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.log_file.flush()


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: gui_app.py LOG")
    root = tk.Tk()
    LoggingApp(root, argv[1])
    root.mainloop()


if __name__ == "__main__":
    main(sys.argv)
