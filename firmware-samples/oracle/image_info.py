#!/usr/bin/env python3
"""Reports what esptool makes of ESP app images, as JSON, for the esp-image oracle tests.

Usage: image_info.py FILE...   -> {"esptool_version": "...", "images": [{...}, ...]}

Each image is loaded with esptool's own code (esptool.bin_image.LoadFirmwareImage and the
app-description parser `esptool image-info` uses), never with a reimplementation, so the
Rust validator is compared against esptool's behaviour. Failures esptool raises are mapped
to the validator's reason codes in "problems"; so are an invalid checksum or hash, which
`esptool image-info` only prints.
"""

import json
import struct
import sys

try:
    import esptool
    from esptool.bin_image import LoadFirmwareImage
    from esptool.cmds import _parse_app_info
    from esptool.targets import CHIP_DEFS
    from esptool.util import FatalError
except ImportError as e:  # the Rust test turns this exit code into a clear failure
    print(f"esptool is not importable ({e}): pip install esptool", file=sys.stderr)
    sys.exit(3)

IMAGE_MAGIC = 0xE9


def chip_name(chip_id):
    for name, rom in CHIP_DEFS.items():
        if getattr(rom, "IMAGE_CHIP_ID", None) == chip_id:
            return name
    return None


def classify(exc):
    """esptool's exceptions while loading, as validator reason codes."""
    text = str(exc)
    if isinstance(exc, FatalError):
        if "Invalid firmware image magic" in text:
            return "bad_magic"
        if "End of file reading segment" in text:
            return "truncated"
        if "Invalid segment count" in text:
            return "too_many_segments"
    if isinstance(exc, RuntimeError) and "append_digest" in text:
        return "bad_hash_flag"
    # Short reads: struct.unpack of a cut header, ord() of the missing checksum byte.
    if isinstance(exc, (struct.error, TypeError)):
        return "truncated"
    return "unexpected:" + type(exc).__name__ + ":" + text


def app_info(image):
    """The app description from the first DROM segment, as `esptool image-info` finds it."""
    for seg in image.segments:
        if "DROM" in seg.get_memory_type(image):
            try:
                desc = _parse_app_info(seg.data)
            except (struct.error, UnicodeDecodeError) as e:
                return None, type(e).__name__
            if desc is None:
                return None, "bad_app_desc_magic"
            return {
                "secure_version": desc["secure_version"],
                "version": desc["version"],
                "project_name": desc["project_name"],
                "time": desc["time"],
                "date": desc["date"],
                "idf_version": desc["idf_ver"],
                "elf_sha256": desc["app_elf_sha256"],
            }, None
    return None, "no_drom_segment"


def inspect(path):
    with open(path, "rb") as f:
        data = f.read()
    out = {"path": path, "file_len": len(data), "problems": []}
    if len(data) < 24:
        out["problems"].append("truncated")
        return out
    if data[0] != IMAGE_MAGIC:
        # `esptool image-info` stops here ("invalid magic number").
        out["problems"].append("bad_magic")
        return out
    chip_id = struct.unpack_from("<H", data, 12)[0]
    out["chip_id"] = chip_id
    chip = chip_name(chip_id)
    out["chip"] = chip
    if chip is None:
        out["problems"].append("unknown_chip")
        return out
    try:
        image = LoadFirmwareImage(chip, data)
    except Exception as e:  # noqa: BLE001 - every failure is data for the comparison
        out["problems"].append(classify(e))
        out["error"] = str(e)
        return out

    out["segments"] = [
        {"addr": s.addr, "len": len(s.data), "file_offs": s.file_offs}
        for s in image.segments
    ]
    calc = image.calculate_checksum()
    out["checksum"] = image.checksum
    out["checksum_valid"] = image.checksum == calc
    if not out["checksum_valid"]:
        out["problems"].append("checksum_mismatch")
    out["hash_appended"] = bool(image.append_digest)
    out["image_len"] = image.data_length if image.append_digest else None
    if image.append_digest:
        stored = image.stored_digest
        out["image_len"] = image.data_length + 32
        if len(stored) < 32:
            out["problems"].append("truncated")
            out["hash_valid"] = False
        else:
            out["hash_valid"] = stored == image.calc_digest
            if not out["hash_valid"]:
                out["problems"].append("hash_mismatch")
    app, app_problem = app_info(image)
    out["app"] = app
    if app_problem:
        out["app_problem"] = app_problem
    return out


def main(paths):
    report = {
        "esptool_version": esptool.__version__,
        "images": [inspect(p) for p in paths],
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
