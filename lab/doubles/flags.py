"""Command-line flags in the Kubernetes style (`--name=value`, `--name value`, `-v=5`)."""


def parse(argv, booleans=()):
    """Flags as {name: value} (last wins) and the positional arguments."""
    flags, args, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            args += argv[i + 1:]
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.lstrip("-").partition("=")
            if not eq:
                if name in booleans or i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    value = "true"
                else:
                    i += 1
                    value = argv[i]
            flags[name] = value
        else:
            args.append(arg)
        i += 1
    return flags, args
