using System.ComponentModel;
using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.Data.Public;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Data;

/// <summary>Arguments of <c>safetune data list</c>.</summary>
public sealed class DataListSettings : CommandSettings
{
    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print one JSON object: cache, mirror, and sets, a list of objects with name, file, description, licence, sources, transform, sha256, bytes, state (ok, not fetched, checksum mismatch) and path.")]
    public bool Json { get; init; }
}

/// <summary>Arguments of <c>safetune data fetch</c> and <c>safetune data verify</c>.</summary>
public sealed class DataSetsSettings : CommandSettings
{
    /// <summary>Set names.</summary>
    [CommandArgument(0, "<NAME>")]
    [Description("The sets (see safetune data list); all names every set. fetch also takes a public model's name (stories260k), read from SAFETUNE_MODEL_MIRROR.")]
    public string[] Names { get; init; } = [];

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print one JSON object whose sets list holds name, state, path and sha256 of each set.")]
    public bool Json { get; init; }

    /// <summary>True when the names are just <c>all</c>.</summary>
    public bool All => Names is ["all"];

    /// <summary>The named sets, or all of them (names of public models left out).</summary>
    public IReadOnlyList<PublicDataSet> Sets() => All ? PublicData.Sets : [.. Names.Where(n => !IsModel(n)).Select(PublicData.Find)];

    /// <summary>The public models named (<see cref="PublicModels"/>); none for <c>all</c>.</summary>
    public IReadOnlyList<PublicModel> Models() => All ? [] : [.. Names.Where(IsModel).Select(PublicModels.Find)];

    private static bool IsModel(string name) => PublicModels.Models.Any(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));
}

/// <summary><c>safetune data list</c>: the registered public data sets and where each is on this machine.</summary>
public sealed class DataListCommand : Command<DataListSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, DataListSettings s, CancellationToken cancellationToken)
    {
        using var store = PublicDataStore.Default;
        var checks = PublicData.Sets.Select(store.Check).ToList();
        if (s.Json)
        {
            JsonOut.Write(w =>
            {
                w.WriteString("cache", store.CacheDirectory);
                if (store.Mirror is null) w.WriteNull("mirror"); else w.WriteString("mirror", store.Mirror);
                w.WriteStartArray("sets");
                foreach (var c in checks)
                {
                    w.WriteStartObject();
                    w.WriteString("name", c.Set.Name);
                    w.WriteString("file", c.Set.File);
                    w.WriteString("description", c.Set.Description);
                    w.WriteString("licence", c.Set.Licence);
                    w.WriteStartArray("sources");
                    foreach (var src in c.Set.Sources) w.WriteStringValue(src.Url);
                    w.WriteEndArray();
                    w.WriteString("transform", c.Set.Transform.ToString());
                    w.WriteString("sha256", c.Set.Sha256);
                    w.WriteNumber("bytes", c.Set.Bytes);
                    w.WriteString("state", State(c.State));
                    w.WriteString("path", c.Path);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            });
            return ExitCodes.Ok;
        }
        var table = new Table().AddColumns("name", "what", "licence", "source", "here");
        foreach (var c in checks)
            table.AddRow(Markup.Escape(c.Set.Name), Markup.Escape(c.Set.Description), Markup.Escape(c.Set.Licence),
                Markup.Escape(Source(c.Set)), Markup.Escape(State(c.State)));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(Markup.Escape(store.MirrorIsFolder ? $"mirror folder: {store.Mirror}" : $"cache: {store.CacheDirectory}"
            + (store.Mirror is null ? $" (set {PublicDataStore.MirrorVariable} to a folder or URL to use a mirror)" : $"; mirror: {store.Mirror}")));
        return ExitCodes.Ok;
    }

    private static string Source(PublicDataSet set)
    {
        if (!set.HasPublicSource) return "mirror only";
        var host = new Uri(set.Sources[0].Url).Host;
        var transform = set.Transform == PublicDataTransform.None ? "" : $", {set.Transform}";
        return set.Sources.Count == 1 ? host + transform : $"{host} ({set.Sources.Count} files{transform})";
    }

    internal static string State(PublicDataState state) => state switch
    {
        PublicDataState.Ok => "ok",
        PublicDataState.Missing => "not fetched",
        _ => "checksum mismatch",
    };
}

/// <summary>
/// <c>safetune data fetch</c>: downloads sets into the cache (resuming, checking each SHA-256); a public model's name
/// fetches its Hub folder from the model mirror and prints the folder.
/// </summary>
public sealed class DataFetchCommand : Command<DataSetsSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, DataSetsSettings s, CancellationToken cancellationToken)
    {
        var sets = s.Sets();
        using var store = PublicDataStore.Default;
        var done = new List<(PublicDataSet Set, string Path)>();
        foreach (var set in sets)
        {
            if (s.All && !set.HasPublicSource && store.Mirror is null)
            {
                if (!s.Json) Console.WriteLine($"{set.Name}: skipped (no public file holds it; a mirror serves it, see {PublicDataStore.MirrorVariable})");
                continue;
            }
            var path = store.Resolve(set, cancellationToken);
            done.Add((set, path));
            if (!s.Json)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{set.Name}: {path} ({set.Bytes:N0} bytes, SHA-256 checked)"));
        }
        var models = new List<(PublicModel Model, string Folder)>();
        if (s.Models() is { Count: > 0 } named)
        {
            using var modelStore = PublicDataStore.Models;
            foreach (var model in named)
            {
                var folder = PublicModels.Resolve(model, modelStore, cancellationToken);
                models.Add((model, folder));
                if (!s.Json)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{model.Name}: {folder} ({model.Files.Count} files, {model.Files.Sum(f => f.Bytes):N0} bytes, SHA-256 checked)"));
            }
        }
        if (s.Json) WriteSets(done.Select(d => (d.Set, PublicDataState.Ok, d.Path)), models);
        return ExitCodes.Ok;
    }

    internal static void WriteSets(IEnumerable<(PublicDataSet Set, PublicDataState State, string Path)> sets,
        IReadOnlyList<(PublicModel Model, string Folder)>? models = null) => JsonOut.Write(w =>
    {
        w.WriteStartArray("sets");
        foreach (var (set, state, path) in sets)
        {
            w.WriteStartObject();
            w.WriteString("name", set.Name);
            w.WriteString("state", DataListCommand.State(state));
            w.WriteString("path", path);
            w.WriteString("sha256", set.Sha256);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (models is null) return;
        w.WriteStartArray("models");
        foreach (var (model, folder) in models)
        {
            w.WriteStartObject();
            w.WriteString("name", model.Name);
            w.WriteString("path", folder);
            w.WriteNumber("files", model.Files.Count);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });
}

/// <summary><c>safetune data verify</c>: checks the fetched sets (or the mirror folder) against the registered checksums.</summary>
public sealed class DataVerifyCommand : Command<DataSetsSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, DataSetsSettings s, CancellationToken cancellationToken)
    {
        using var store = PublicDataStore.Default;
        var checks = s.Sets().Select(store.Check).ToList();
        if (s.Json) DataFetchCommand.WriteSets(checks.Select(c => (c.Set, c.State, c.Path)));
        else
            foreach (var c in checks)
                Console.WriteLine(c.State == PublicDataState.Corrupt
                    ? $"{c.Set.Name}: {c.Path}: checksum mismatch (SHA-256 {c.Sha256}, expected {c.Set.Sha256})"
                    : $"{c.Set.Name}: {DataListCommand.State(c.State)} ({c.Path})");
        var bad = checks.Where(c => c.State == PublicDataState.Corrupt || (store.MirrorIsFolder && c.State == PublicDataState.Missing)).ToList();
        if (bad.Count == 0) return ExitCodes.Ok;
        Console.Error.WriteLine($"safetune: error: {bad.Count} set(s) fail the check: {string.Join(", ", bad.Select(c => c.Set.Name))}"
            + (store.MirrorIsFolder ? $" (in the mirror folder {store.Mirror})" : "; run safetune data fetch to download them again"));
        return ExitCodes.UserError;
    }
}
