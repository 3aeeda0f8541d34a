using System.Security.Cryptography;
using SafeTune.Data.Public;
using SafeTune.Onnx;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class PublicModelTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static PublicModel Stories => PublicModels.Find("stories260k");

    private PublicDataStore Store(string mirror) => new(new PublicDataStoreOptions
    {
        CacheDirectory = _dir.File("cache"), Mirror = mirror, MirrorVariable = PublicDataStore.ModelMirrorVariable,
    });

    [Fact]
    public void Registry_checksums_match_the_shared_models()
    {
        Assert.Equal(PublicModels.Models.Count, PublicModels.Models.Select(m => m.Name).Distinct().Count());
        foreach (var model in PublicModels.Models)
        {
            Assert.False(string.IsNullOrWhiteSpace(model.Licence), model.Name);
            foreach (var file in model.Files)
            {
                Assert.StartsWith(model.Name + "/", file.File);
                var path = Repo.SharedModels(file.File.Split('/'));
                Assert.True(File.Exists(path), $"{file.File}: {path} is missing");
                Assert.Equal(file.Bytes, new FileInfo(path).Length);
                Assert.True(file.Sha256 == Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))), $"{file.File}: checksum of {path}");
            }
            // Every file of the model's shared folder is registered.
            var present = Directory.EnumerateFiles(Repo.SharedModels(model.Name)).Select(f => model.Name + "/" + Path.GetFileName(f)).Order();
            Assert.Equal(present, model.Files.Select(f => f.File).Order());
        }
    }

    [Fact]
    public void Names_resolve_case_insensitively_and_unknown_names_list_the_models()
    {
        Assert.Same(Stories, PublicModels.Find("Stories260K"));
        var e = Assert.Throws<UserInputException>(() => PublicModels.Find("stories15m"));
        Assert.Contains("stories15m", e.Message);
        Assert.Contains("stories260k", e.Message);
    }

    [Fact]
    public void A_mirror_folder_is_read_in_place()
    {
        using var store = Store(Repo.SharedModels());
        Assert.Equal(Path.GetFullPath(Repo.SharedModels("stories260k")), PublicModels.Resolve(Stories, store));
        Assert.False(Directory.Exists(_dir.File("cache")));
    }

    [Fact]
    public void A_mirror_folder_without_the_model_or_with_a_changed_file_is_refused_by_name()
    {
        using (var empty = Store(_dir.File("empty")))
        {
            var e = Assert.Throws<PublicDataException>(() => PublicModels.Resolve(Stories, empty));
            Assert.Contains("stories260k", e.Message);
            Assert.Contains(PublicDataStore.ModelMirrorVariable, e.Message);
            Assert.DoesNotContain(PublicDataStore.MirrorVariable, e.Message);
        }

        var copy = Directory.CreateDirectory(_dir.File("mirror", "stories260k")).FullName;
        foreach (var f in Directory.GetFiles(Repo.SharedModels("stories260k"))) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        File.AppendAllText(Path.Combine(copy, "config.json"), " ");
        using var changed = Store(_dir.File("mirror"));
        var c = Assert.Throws<PublicDataException>(() => PublicModels.Resolve(Stories, changed));
        Assert.Contains(Path.Combine(copy, "config.json"), c.Message);
        Assert.Contains(Stories.Files.Single(f => f.File.EndsWith("/config.json", StringComparison.Ordinal)).Sha256, c.Message);
    }

    [Fact]
    public async Task A_mirror_url_fills_the_model_cache_once()
    {
        await using var server = LoopbackFileServer.Start(Repo.SharedModels());
        using (var store = Store(server.BaseUrl))
        {
            var folder = PublicModels.Resolve(Stories, store);
            Assert.Equal(_dir.File("cache", "stories260k"), folder);
            foreach (var f in Directory.GetFiles(Repo.SharedModels("stories260k")))
                Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(folder, Path.GetFileName(f))));
        }
        int received = server.Received.Count;
        Assert.Equal(Stories.Files.Count, received);
        using (var again = Store(server.BaseUrl)) PublicModels.Resolve(Stories, again);
        Assert.Equal(received, server.Received.Count);
    }

    [Fact]
    public void Without_a_mirror_the_message_names_the_origin_and_the_model_mirror_variable()
    {
        using var store = new PublicDataStore(new PublicDataStoreOptions { CacheDirectory = _dir.File("cache"), MirrorVariable = PublicDataStore.ModelMirrorVariable });
        var e = Assert.Throws<PublicDataException>(() => PublicModels.Resolve(Stories, store));
        Assert.Contains("stories260k", e.Message);
        Assert.Contains("huggingface.co/karpathy/tinyllamas", e.Message);
        Assert.Contains(PublicDataStore.ModelMirrorVariable, e.Message);
    }
}
