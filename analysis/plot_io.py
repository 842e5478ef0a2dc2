"""Command-line and PNG plumbing shared by the plotting tools (heatmap.py, curves.py).

Their contract for bad input: one line on stderr starting with the tool's name, exit status 2.
"""

import argparse
import io
import os
import sys
import tempfile

DPI = 100


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2 (argparse would print the usage too)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
        sys.exit(2)


def image_parser(prog, doc, source_help, default_output):
    """The tools' common command line: SOURCE, --output/-o OUT.png and --title, with the description
    and the epilog taken from the module docstring `doc`. Parse with parse_image_args."""
    p = OneLineParser(prog=prog, description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog="\n\n".join(doc.split("\n\n")[2:]))
    p.add_argument("source", metavar="SOURCE", help=source_help)
    p.add_argument("--output", "-o", default=default_output, metavar="OUT.png",
                   help=f"image to write (default {default_output})")
    p.add_argument("--title", metavar="T", help="first title line (default: names the source)")
    return p


def parse_image_args(p, argv):
    """p.parse_args(argv), with --output checked to name a .png file."""
    a = p.parse_args(argv)
    if not a.output.lower().endswith(".png"):
        p.error(f"--output must name a .png file, got {a.output!r}")
    return a


def save_png(fig, output):
    """Saves at DPI; a 256-colour palette keeps the file small (the images have few distinct colours).
    The image is written whole or not at all (see replace_file)."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    data = buf.getvalue()
    try:
        from PIL import Image
    except ImportError:  # matplotlib depends on Pillow, but do not insist
        pass
    else:
        img = Image.open(io.BytesIO(data)).convert("RGB")
        out = io.BytesIO()
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT if hasattr(Image, "Quantize") else 0,
                     dither=0).save(out, format="PNG", optimize=True)
        data = out.getvalue()
    replace_file(output, data)


def replace_file(output, data):
    """Writes the bytes `data` to `output` without ever leaving a partial file there: they go to a new
    temporary file beside the real path of `output` (flushed and fsynced), which is then renamed over
    it. A failed write (a full disk, a file-size limit) raises OSError, removes the temporary and leaves
    the file that was there untouched. When `output` is a symbolic link, the link stays and its target
    is replaced. The new file gets the mode open() would give it (0666 less the umask)."""
    target = os.path.realpath(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                               dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_image(prog, output, render):
    """Runs render() (which writes `output`) -> (exit status, render's result). A missing directory
    or a failed write is one line on stderr and status 2."""
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        sys.stderr.write(f"{prog}: {output}: the directory {out_dir} does not exist\n")
        return 2, None
    try:
        return 0, render()
    except OSError as e:
        sys.stderr.write(f"{prog}: {output}: cannot write ({e.strerror or e})\n")
        return 2, None
