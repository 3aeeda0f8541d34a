using System.Runtime.InteropServices;

namespace SafeTune.Onnx;

/// <summary>The kind of thing a path names, after following links.</summary>
public enum FileKind
{
    /// <summary>Nothing exists there.</summary>
    Missing,
    /// <summary>A regular file.</summary>
    Regular,
    /// <summary>A folder.</summary>
    Directory,
    /// <summary>A named pipe (FIFO).</summary>
    Fifo,
    /// <summary>A character or block device.</summary>
    Device,
    /// <summary>A Unix domain socket.</summary>
    Socket,
    /// <summary>Something else, or a platform that does not say.</summary>
    Other,
}

/// <summary>
/// Path checks for files a user hands in: the real path of a location (every link along it followed) must stay inside a
/// folder, and inputs and outputs must be regular files, never a pipe, a device or a folder.
/// </summary>
public static partial class SafePaths
{
    private const int MaxLinkHops = 40;

    /// <summary>
    /// The real path of <paramref name="path"/>: absolute, with every component that is a link replaced by its target,
    /// recursively. Components that do not exist are kept as written.
    /// </summary>
    public static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? "/";
        var pending = new Stack<string>(Parts(full[root.Length..]).Reverse());
        var current = root;
        int hops = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".") continue;
            if (part == "..") { current = Path.GetDirectoryName(current) ?? root; continue; }
            var next = Path.Combine(current, part);
            if (new FileInfo(next).LinkTarget is { } target)
            {
                if (++hops > MaxLinkHops) throw new InvalidDataException($"{path}: too many levels of links.");
                foreach (var p in Parts(target).Reverse()) pending.Push(p);
                if (Path.IsPathRooted(target)) current = Path.GetPathRoot(target) ?? root;
            }
            else current = next;
        }
        return current;
    }

    private static string[] Parts(string path) => path.Split(['/', Path.DirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);

    /// <summary>True when the real path of <paramref name="path"/> lies strictly inside the real path of <paramref name="folder"/>.</summary>
    public static bool IsInside(string folder, string path)
    {
        var realFolder = Path.TrimEndingDirectorySeparator(RealPath(folder));
        var realPath = RealPath(path);
        var comparison = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return realPath.StartsWith(realFolder + Path.DirectorySeparatorChar, comparison);
    }

    /// <summary>
    /// Resolves <paramref name="relative"/> against <paramref name="folder"/> and returns it when its real path stays inside
    /// the folder's real path; otherwise throws <see cref="InvalidDataException"/> with <paramref name="what"/> first.
    /// Absolute paths, drive letters and <c>..</c> segments are refused before any link is followed. Messages call the
    /// folder <paramref name="folderName"/>, or its path when that is null.
    /// </summary>
    public static string ResolveInside(string folder, string relative, string what, string? folderName = null)
    {
        var name = folderName ?? folder;
        if (relative.Length == 0 || relative.Contains('\0'))
            throw new InvalidDataException($"{what}: '{relative.Replace("\0", "\\0", StringComparison.Ordinal)}' is not a file name.");
        if (Path.IsPathRooted(relative) || relative.Contains(':') || relative.StartsWith('/') || relative.StartsWith('\\'))
            throw new InvalidDataException($"{what}: '{relative}' is an absolute path; only paths inside {name} are allowed.");
        if (relative.Split('/', '\\').Any(s => s == ".."))
            throw new InvalidDataException($"{what}: '{relative}' leaves {name} ('..' is not allowed).");
        var full = Path.GetFullPath(Path.Combine(folder, relative));
        if (!IsInside(folder, full))
            throw new InvalidDataException($"{what}: '{relative}' resolves outside {name} (through a link).");
        return full;
    }

    /// <summary>What <paramref name="path"/> names, following links.</summary>
    public static FileKind KindOf(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            var buffer = new byte[256];
            try
            {
                if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0) return Exists(path) ? FileKind.Other : FileKind.Missing;
            }
            catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
            {
                return Fallback(path);
            }
            int mode = BitConverter.ToUInt16(buffer, 28) & 0xF000;
            return mode switch
            {
                0x8000 => FileKind.Regular,
                0x4000 => FileKind.Directory,
                0x1000 => FileKind.Fifo,
                0x2000 or 0x6000 => FileKind.Device,
                0xC000 => FileKind.Socket,
                _ => FileKind.Other,
            };
        }
        return Fallback(path);
    }

    private static bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    private static FileKind Fallback(string path) =>
        Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Regular : FileKind.Missing;

    /// <summary>
    /// Throws <see cref="InvalidDataException"/> naming <paramref name="path"/> unless it is an existing regular file
    /// (a pipe would block the read, a device would never end).
    /// </summary>
    public static void RequireRegularInput(string path)
    {
        var kind = KindOf(path);
        if (kind == FileKind.Missing) throw new FileNotFoundException($"{path}: file not found.", path);
        if (kind != FileKind.Regular) throw new InvalidDataException($"{path}: is {Describe(kind)}, not a regular file; only regular files are read.");
    }

    /// <summary>
    /// Throws <see cref="InvalidDataException"/> naming <paramref name="path"/> when writing there would replace something
    /// that is not a regular file (a device, a pipe, a folder), or when its parent is not a folder.
    /// </summary>
    public static void RequireWritableTarget(string path)
    {
        var full = Path.GetFullPath(path);
        var kind = KindOf(full);
        if (kind is not (FileKind.Missing or FileKind.Regular))
            throw new InvalidDataException($"{path}: is {Describe(kind)}; an output must be a regular file or not exist yet.");
        for (var parent = Path.GetDirectoryName(full); !string.IsNullOrEmpty(parent); parent = Path.GetDirectoryName(parent))
        {
            var parentKind = KindOf(parent);
            if (parentKind == FileKind.Missing) continue;
            if (parentKind != FileKind.Directory)
                throw new InvalidDataException($"{path}: cannot be written, because {parent} is {Describe(parentKind)}, not a folder.");
            break;
        }
    }

    /// <summary>"a folder", "a named pipe (FIFO)", ... for messages.</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Missing => "missing",
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a folder",
        FileKind.Fifo => "a named pipe (FIFO)",
        FileKind.Device => "a device",
        FileKind.Socket => "a socket",
        _ => "not a regular file",
    };

    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, byte[] buffer);
}
