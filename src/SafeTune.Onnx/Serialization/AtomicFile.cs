namespace SafeTune.Onnx;

/// <summary>An output file that cannot be written: the target is not a regular file, its folder is a file, or the disk refused.</summary>
public sealed class OutputFileException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>Writes files so that a crash leaves either the old file or the new one, never a torn one.</summary>
public static class AtomicFile
{
    /// <summary>
    /// Writes through <paramref name="write"/> into a temporary file beside <paramref name="path"/>, flushes it to disk, then renames it over the target.
    /// A target that exists and is not a regular file (a device, a pipe, a folder) is refused, never replaced; failures of the
    /// file system (read-only, full, no permission) throw <see cref="OutputFileException"/> naming the path.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        try { SafePaths.RequireWritableTarget(full); }
        catch (InvalidDataException e) { throw new OutputFileException(e.Message, e); }
        var temp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            using (var s = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(s);
                s.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not OutputFileException)
        {
            throw new OutputFileException($"{path}: cannot be written ({Reason(e, temp, full)}).", e);
        }
        finally
        {
            try { if (File.Exists(temp)) File.Delete(temp); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the original failure is reported */ }
        }
    }

    /// <summary>Why the file system refused, in the user's terms: the temporary file's name is never shown.</summary>
    private static string Reason(Exception e, string temp, string full)
    {
        var folder = Path.GetDirectoryName(full);
        if (e is UnauthorizedAccessException) return $"permission denied in {folder}";
        if (e.Message.Contains("No space left on device", StringComparison.Ordinal)) return $"the disk holding {folder} is full";
        if (e.Message.Contains("Read-only file system", StringComparison.Ordinal)) return $"{folder} is on a read-only file system";
        return e.Message.Replace(temp, full, StringComparison.Ordinal).TrimEnd('.');
    }

    /// <summary>Writes all bytes atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    /// <summary>Writes text (UTF-8) atomically.</summary>
    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
}
