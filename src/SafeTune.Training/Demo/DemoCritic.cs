using SafeTune.Safety.Critics.Local;

namespace SafeTune.Training.Demo;

/// <summary>The demo's Safety Critic: the local MiniLM classifier judge, fine-tuned by SafeTune once and cached.</summary>
internal static class DemoCritic
{
    /// <summary>
    /// Builds (first use) or loads the local classifier judge in <paramref name="cacheDirectory"/> and returns its judge
    /// spec (<c>onnx:FOLDER</c>) for the "adaptive with the critic" run.
    /// </summary>
    public static string Prepare(string cacheDirectory, IProgress<LocalJudgeProgress>? progress = null, CancellationToken cancellation = default)
    {
        using var judge = LocalClassifierJudge.BuildOrLoad(cacheDirectory, progress, cancellation: cancellation);
        return "onnx:" + judge.Directory;
    }
}
