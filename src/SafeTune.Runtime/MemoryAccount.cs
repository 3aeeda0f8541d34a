using System.Diagnostics;
using System.Globalization;

namespace SafeTune.Runtime;

/// <summary>One line of a <see cref="MemoryAccount"/>: the process's memory after a phase, and what the phase holds.</summary>
/// <param name="Phase">What had just finished.</param>
/// <param name="RssMb">Resident memory after it, MiB.</param>
/// <param name="PeakRssMb">The process's peak resident memory so far, MiB.</param>
/// <param name="Seconds">Seconds since the account was started.</param>
/// <param name="HeldMb">What the phase itself accounts for (for example the bytes of the weights it holds), MiB; null if not known.</param>
internal sealed record MemoryPhase(string Phase, double RssMb, double PeakRssMb, double Seconds, double? HeldMb);

/// <summary>
/// Where a run's memory goes: a list of phases with the resident memory after each (read from the kernel, so it counts
/// native allocations, memory-mapped weights and ONNX Runtime's arenas as well as the managed heap) and, where known, the
/// bytes the phase holds by design. Fit and train report it with <c>--json</c> as <c>"memory"</c>.
/// </summary>
internal sealed class MemoryAccount
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<MemoryPhase> _phases = [];

    /// <summary>The phases recorded, in order.</summary>
    public IReadOnlyList<MemoryPhase> Phases => _phases;

    /// <summary>Records the process's memory after <paramref name="phase"/>.</summary>
    public void Mark(string phase, long? heldBytes = null)
    {
        var (rss, peak) = Read();
        _phases.Add(new MemoryPhase(phase, rss / 1048576.0, peak / 1048576.0, _clock.Elapsed.TotalSeconds, heldBytes / 1048576.0));
    }

    /// <summary>The process's resident and peak resident bytes (VmRSS and VmHWM on Linux).</summary>
    public static (long Rss, long Peak) Read()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                long rss = -1, peak = -1;
                foreach (var line in File.ReadLines("/proc/self/status"))
                {
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kilobytes(line);
                    else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) peak = Kilobytes(line);
                }
                if (rss >= 0 && peak >= 0) return (rss * 1024, peak * 1024);
            }
            catch (IOException) { }
        }
        using var p = Process.GetCurrentProcess();
        return (p.WorkingSet64, p.PeakWorkingSet64);
    }

    /// <summary>The process's peak resident memory in MiB.</summary>
    public static double PeakMb() => Read().Peak / 1048576.0;

    private static long Kilobytes(string line) =>
        long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim().TrimEnd("kB").Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture);

    /// <summary>The bytes of a <c>Key: N kB</c> field of a /proc file (<c>/proc/meminfo</c>), or null when absent or unreadable.</summary>
    internal static long? ProcField(string path, string key)
    {
        try
        {
            foreach (var line in File.ReadLines(path))
                if (line.StartsWith(key + ":", StringComparison.Ordinal)) return Kilobytes(line) * 1024;
        }
        catch (IOException) { }
        return null;
    }
}
