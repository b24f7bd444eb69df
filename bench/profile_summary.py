"""Summarise py-spy's raw (collapsed) stacks: where the server's samples are.

    python bench/profile_summary.py PROFILE.txt [--top N]

Prints the functions with the most samples of their own ("own": the frame
that was running) and the most samples anywhere on the stack ("inclusive").
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    with open(args.profile) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            samples += n
            frames = stack.split(";")
            own[frames[-1]] += n
            for frame in set(frames):
                total[frame] += n
    if not samples:
        print("no samples")
        return
    print(f"{samples} samples; top own time:")
    for frame, n in own.most_common(args.top):
        print(f"  {100 * n / samples:5.1f}%  {frame[:150]}")
    print("top inclusive (below the event loop):")
    for frame, n in total.most_common(args.top + 12)[12:]:
        print(f"  {100 * n / samples:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main()
