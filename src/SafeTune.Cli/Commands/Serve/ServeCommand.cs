using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Demo;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Serving;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Serve;

/// <summary>
/// <c>safetune serve</c>: an OpenAI-compatible chat endpoint (<c>POST /v1/chat/completions</c>, <c>GET /v1/models</c>)
/// over an ONNX chat model, the demo model, or a Safety Critic. Runs until Ctrl+C or SIGTERM.
/// </summary>
public sealed class ServeCommand : Command<ServeSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, ServeSettings s, CancellationToken cancellationToken)
    {
        var options = new ServeOptions
        {
            ModelPath = s.ServesDemo ? null : s.Model,
            Tokenizer = s.Tokenizer,
            Template = s.Template,
            Demo = s.ServesDemo,
            CacheRoot = s.Cache,
            Judge = s.Judge,
            JudgeBatch = s.MaxBatch,
            ModelId = s.ModelId,
            DefaultMaxTokens = s.MaxTokens,
            MaxPromptTokens = s.MaxPromptTokens,
            Runtime = s.Provider is null ? null : new SessionConfig { Provider = SessionConfig.ParseProvider(s.Provider) },
        };
        var backend = s.ServesDemo ? CreateWithProgress(options) : ChatBackends.Create(options);
        ChatServer server;
        try
        {
            server = ChatServer.StartAsync(backend, new ChatServerOptions { Address = IPAddress.Parse(s.Host), Port = s.Port }, cancellationToken)
                .GetAwaiter().GetResult();
        }
        catch (IOException e)
        {
            backend.Dispose();
            throw new UserInputException($"--host {s.Host} --port {s.Port.ToString(CultureInfo.InvariantCulture)}: {e.Message}", e);
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
        Console.CancelKeyPress += onCancel;
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        try
        {
            var template = (backend as GeneratorChatBackend)?.TemplateChoice;
            if (template?.Warning is { } warning) Console.Error.WriteLine("safetune: warning: " + warning);
            if (s.Json) WriteJsonLine(server, template);
            else
            {
                // Plain text, never wrapped, so scripts can read the URL off the first line.
                Console.Out.WriteLine($"serving {backend.ModelId} at {server.BaseUrl} (POST /chat/completions, GET /models); Ctrl+C stops");
                if (template is not null) Console.Out.WriteLine(template.Describe());
            }
            Console.Out.Flush();
            try
            {
                server.WaitForShutdownAsync(stop.Token).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
            }
            return ExitCodes.Ok;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Builds the demo backend with a progress bar on stderr while the demo model trains.</summary>
    private static IChatBackend CreateWithProgress(ServeOptions options)
    {
        var err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        IChatBackend? backend = null;
        err.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("demo model", maxValue: 1);
                var progress = new SynchronousProgress<DemoProgress>(p =>
                {
                    task.MaxValue = Math.Max(1, p.TotalSteps);
                    task.Value = p.Stage == "loaded" ? p.TotalSteps : p.Step;
                    task.Description = p.Stage == "train"
                        ? string.Create(CultureInfo.InvariantCulture, $"training the demo model: step {p.Step}/{p.TotalSteps}, loss {p.Loss:F3}")
                        : $"demo model: {p.Stage}";
                });
                backend = ChatBackends.Create(options, progress);
                task.Value = task.MaxValue;
            });
        return backend!;
    }

    private static void WriteJsonLine(ChatServer server, Models.Chat.TemplateChoice? template)
    {
        using var stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("base_url", server.BaseUrl.ToString());
            w.WriteNumber("port", server.Port);
            w.WriteString("model", server.Backend.ModelId);
            if (template is not null) w.WriteString("template", template.Name);
            w.WriteEndObject();
        }
        stdout.Write("\n"u8);
        stdout.Flush();
    }
}
