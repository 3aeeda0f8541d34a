using BenchmarkDotNet.Running;

namespace SafeTune.Benchmarks;

/// <summary>Entry point: <c>dotnet run -c Release --project benchmarks/SafeTune.Benchmarks -- --filter *</c>.</summary>
public static class Program
{
    private static readonly string[] InfoOptions = ["--list", "--help", "-h", "-?", "--version", "--info"];

    /// <summary>
    /// Runs the benchmarks chosen by the command-line arguments (BenchmarkDotNet's own options). Exits with 1 when a
    /// filter selected nothing or a benchmark failed, so that scripts notice.
    /// </summary>
    public static int Main(string[] args)
    {
#if SAFETUNE_GENAI
        if (args.Length > 0 && args[0] == "genai-side-by-side") return GenAiSideBySide.Run(args[1..]);
#endif
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args).ToList();
        if (summaries.Count == 0)
            return args.Any(a => InfoOptions.Contains(a.Split('=')[0], StringComparer.OrdinalIgnoreCase)) ? 0 : 1;
        bool failed = summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        return failed ? 1 : 0;
    }
}
