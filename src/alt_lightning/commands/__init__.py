"""Extra `alt` subcommands beside training (`alt corpus`, ...), each a module with `main(argv) -> int`."""
