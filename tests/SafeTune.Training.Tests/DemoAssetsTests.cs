using SafeTune.Safety.Probes;
using SafeTune.TestSupport;
using SafeTune.Training.Demo;

namespace SafeTune.Training.Tests;

/// <summary>The demo's cached probe: reused while its recipe, model and prompts are the same, trained again otherwise.</summary>
public sealed class DemoAssetsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private (DemoAssetFiles Files, bool Trained) Prepare()
    {
        bool trained = false;
        var files = DemoAssets.Prepare(_dir.Path, new SynchronousProgress(p => trained |= p.Stage == "probe"));
        return (files, trained);
    }

    [Fact]
    public void The_cached_probe_is_keyed_on_its_recipe_model_and_prompts()
    {
        var (files, trained) = Prepare();
        Assert.True(trained);
        var key = File.ReadAllText(files.ProbePath + ".key").Trim();
        Assert.Equal(DemoAssets.ProbeKey(files.Model.ModelPath, files.ProbeHarmfulPath, files.ProbeHarmlessPath), key);
        Assert.Equal(ProbeFile.HashFile(files.Model.ModelPath), ProbeFile.Load(files.ProbePath).ModelSha256);

        Assert.False(Prepare().Trained);

        // A key written by another recipe (or another model or other prompts): trained again, and the key restored.
        File.WriteAllText(files.ProbePath + ".key", new string('0', 64) + "\n");
        Assert.True(Prepare().Trained);
        Assert.Equal(key, File.ReadAllText(files.ProbePath + ".key").Trim());

        // A probe without its key (a run killed between the two files): trained again.
        File.Delete(files.ProbePath + ".key");
        Assert.True(Prepare().Trained);

        // The key covers the prompts: other harmless prompts give another key.
        File.AppendAllText(files.ProbeHarmlessPath, "What is the capital of Peru?\n");
        Assert.NotEqual(key, DemoAssets.ProbeKey(files.Model.ModelPath, files.ProbeHarmfulPath, files.ProbeHarmlessPath));
    }

    private sealed class SynchronousProgress(Action<DemoAssetProgress> report) : IProgress<DemoAssetProgress>
    {
        public void Report(DemoAssetProgress value) => report(value);
    }
}
