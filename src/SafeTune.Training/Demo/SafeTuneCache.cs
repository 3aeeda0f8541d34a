using SafeTune.Models.Demo;

namespace SafeTune.Training.Demo;

/// <summary>Where SafeTune keeps what it builds once (the demo model and its assets, the local judge).</summary>
internal static class SafeTuneCache
{
    /// <summary>The environment variable that moves the cache.</summary>
    public const string EnvironmentVariable = DemoModel.CacheEnvironmentVariable;

    /// <summary>The cache root (<see cref="DemoModel.CacheRoot"/>): <c>$SAFETUNE_CACHE</c>, else <c>$XDG_CACHE_HOME/safetune</c>, else <c>~/.cache/safetune</c>.</summary>
    public static string Root => DemoModel.CacheRoot;

    /// <summary>The demo's assets folder under <paramref name="root"/> (default: <see cref="Root"/>).</summary>
    public static string Demo(string? root = null) => Path.Combine(root ?? Root, "demo");

    /// <summary>
    /// The local judge's folder under <paramref name="root"/>; without a root, the judge's own default
    /// (<see cref="Safety.Critics.Local.LocalClassifierJudge.DefaultCacheDirectory"/>, which also honours
    /// <c>$SAFETUNE_JUDGE_CACHE</c>), so the demo and the <c>minilm</c> judge spec find the same build.
    /// </summary>
    public static string Judge(string? root = null) =>
        root is null ? Safety.Critics.Local.LocalClassifierJudge.DefaultCacheDirectory : Path.Combine(root, "judge");
}
