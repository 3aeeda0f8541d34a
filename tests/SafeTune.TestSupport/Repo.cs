using System.Reflection;

namespace SafeTune.TestSupport;

/// <summary>Paths inside the repository and the shared data and model folders beside it.</summary>
public static class Repo
{
    private static readonly Lazy<string> RootPath = new(FindRoot);

    /// <summary>The repository root (the folder holding SafeTune.sln).</summary>
    public static string Root => RootPath.Value;

    /// <summary>A path under <c>tests/fixtures</c>.</summary>
    public static string Fixture(params string[] parts) => Path.Combine([Root, "tests", "fixtures", .. parts]);

    /// <summary>
    /// The C# sources under the repository's <paramref name="folders"/> (such as <c>src</c>), build output (<c>bin</c>,
    /// <c>obj</c>) left out, as full paths in ordinal order.
    /// </summary>
    public static IEnumerable<string> SourceFiles(params string[] folders) => folders
        .SelectMany(d => Directory.EnumerateFiles(Path.Combine(Root, d), "*.cs", SearchOption.AllDirectories))
        .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj"))
        .Order(StringComparer.Ordinal);

    /// <summary>
    /// The third-party data sets: the folder <c>SAFETUNE_DATA_MIRROR</c> names when this process started (a clone
    /// without <c>../shared</c>), else <c>../shared/data</c> from the repository root.
    /// </summary>
    public static string SharedData(params string[] parts) => Path.Combine([DataRoot.Value, .. parts]);

    private static readonly Lazy<string> DataRoot = new(() =>
        Environment.GetEnvironmentVariable("SAFETUNE_DATA_MIRROR") is { Length: > 0 } mirror && Directory.Exists(mirror)
            ? Path.GetFullPath(mirror)
            : Path.Combine(Root, "..", "shared", "data"));

    /// <summary>
    /// The real pretrained models (laid out as <c>NAME/FILE</c>): the folder <c>SAFETUNE_MODEL_MIRROR</c> names when this
    /// process started (a clone without <c>../shared</c>), else <c>../shared/models</c> from the repository root. Tests
    /// read a model through the registry (<c>PublicModels.Resolve</c> with this folder as the mirror), which checks each file.
    /// </summary>
    public static string SharedModels(params string[] parts) => Path.Combine([ModelRoot.Value, .. parts]);

    private static readonly Lazy<string> ModelRoot = new(() =>
        Environment.GetEnvironmentVariable("SAFETUNE_MODEL_MIRROR") is { Length: > 0 } mirror && Directory.Exists(mirror)
            ? Path.GetFullPath(mirror)
            : Path.Combine(Root, "..", "shared", "models"));

    /// <summary>
    /// The cache the slow tests share (laid out as <c>SafeTuneCache</c>: <c>demo/model</c>, <c>judge</c>), so that one
    /// test run builds the demo model and the local judge once: <c>$TMPDIR/safetune-test-cache</c>.
    /// </summary>
    public static string TestCache(params string[] parts) => Path.Combine([Path.GetTempPath(), "safetune-test-cache", .. parts]);

    private static string FindRoot()
    {
        var fromBuild = typeof(Repo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "SafeTuneRepoRoot")?.Value;
        if (fromBuild is not null && File.Exists(Path.Combine(fromBuild, "SafeTune.sln"))) return fromBuild;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SafeTune.sln"))) return d.FullName;
        throw new InvalidOperationException("cannot find the repository root (SafeTune.sln) above " + AppContext.BaseDirectory);
    }
}

/// <summary>A temporary folder deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    /// <summary>Creates a fresh folder under the system temp path.</summary>
    public TempDir() => Path = Directory.CreateTempSubdirectory("safetune-test-").FullName;

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>A path inside the folder.</summary>
    public string File(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <inheritdoc/>
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
