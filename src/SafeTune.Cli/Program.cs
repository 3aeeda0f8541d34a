using SafeTune.Cli.Commands.Critic;
using SafeTune.Cli.Commands.Eval;
using SafeTune.Cli.Commands.Export;
using SafeTune.Cli.Commands.Fit;
using SafeTune.Cli.Commands.Grads;
using SafeTune.Cli.Commands.Inspect;
using SafeTune.Cli.Commands.Probe;
using SafeTune.Cli.Commands.Serve;
using SafeTune.Cli.Commands.Train;
using SafeTune.Cli.Commands.Experiment;
using SafeTune.Cli.Commands.Demo;
using SafeTune.Cli.Commands.Tokenize;
using SafeTune.Cli.Commands.Generate;
using SafeTune.Cli.Commands.Chat;
using SafeTune.Cli.Commands.Data;
using SafeTune.Cli.Infrastructure;
using Spectre.Console.Cli;

ConsoleOutput.Configure();
var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("safetune");
    config.SetApplicationVersion(typeof(ExitCodes).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");
    config.PropagateExceptions();
    config.UseStrictParsing();
    config.SetInterceptor(new NumericOptions());
    config.AddCommand<InspectCommand>("inspect")
        .WithDescription("Show a model's inputs, outputs, opsets, op histogram, parameter count and per-layer hidden-state tensors.")
        .WithExample("inspect", "model.onnx")
        .WithExample("inspect", "model.onnx", "--json")
        .WithExample("inspect", "builtin:tiny-llama");
    config.AddCommand<GradsCommand>("grads")
        .WithDescription("Compute the token cross-entropy of a batch and d loss / d parameter for every float initializer.")
        .WithExample("grads", "model.onnx", "--batch", "batch.json", "--out", "grads.safetensors", "--json");
    config.AddCommand<TokenizeCommand>("tokenize")
        .WithDescription("Show how a text tokenizes or how a conversation renders with a Hub model's own chat template, as Hugging Face does it.")
        .WithExample("tokenize", "--tokenizer", "./SmolLM2-135M-Instruct", "--text", "Hello world")
        .WithExample("tokenize", "--tokenizer", "./Qwen2.5-0.5B-Instruct", "--input", "chats.jsonl", "--out", "ids.jsonl", "--json");
    config.AddCommand<GenerateCommand>("generate")
        .WithDescription("Generate text with an ONNX decoder and its Hub tokenizer, streaming tokens as they come (greedy by default).")
        .WithExample("generate", "--model", "stories260k.onnx", "--tokenizer", "./stories260k", "--prompt", "Once upon a time", "--max-new-tokens", "60")
        .WithExample("generate", "--model", "model.onnx", "--tokenizer", "./SmolLM2-135M-Instruct", "--messages", "chat.json", "--json");
    config.AddCommand<ChatCommand>("chat")
        .WithDescription("Talk to a chat model: each line is a user message, rendered with the model's own template; replies stream as they come.")
        .WithExample("chat", "--model", "./SmolLM2-135M-Instruct", "--tokenizer", "./SmolLM2-135M-Instruct", "--system", "Be brief.");
    config.AddCommand<ExportCommand>("export")
        .WithDescription("Turn a Hugging Face checkpoint (GPT-2, Llama, Mistral, Qwen2; config.json + safetensors) into an ONNX model.")
        .WithExample("export", "--from-hf", "./Qwen2-0.5B", "--out", "qwen2.onnx");
    config.AddBranch("probe", probe =>
    {
        probe.SetDescription("Activation probes: harmful intent read from a model's prompt activations.");
        probe.AddCommand<ProbeTrainCommand>("train")
            .WithDescription("Train a probe (L2-logistic or MLP head) on pooled prompt activations of harmful and harmless prompts.")
            .WithExample("probe", "train", "--model", "minilm.onnx", "--tokenizer", "vocab.txt", "--harmful", "advbench.csv", "--harmless", "alpaca.jsonl", "--out", "probe.json");
        probe.AddCommand<ProbeEvalCommand>("eval")
            .WithDescription("AUROC, TPR at 1% and 5% FPR, accuracy and calibration error of a probe on labelled prompts.")
            .WithExample("probe", "eval", "--probe", "probe.json", "--harmful", "xstest.csv", "--harmless", "alpaca.jsonl", "--json");
        probe.AddCommand<ProbeScoreCommand>("score")
            .WithDescription("The harm probability and flag of every prompt in a file, with a summary.")
            .WithExample("probe", "score", "--probe", "probe.json", "--data", "prompts.txt", "--out", "scores.jsonl");
    });
    config.AddBranch("critic", critic =>
    {
        critic.SetDescription("Safety Critic judges: (prompt, response) pairs scored from 1 (refusal or harmless help) to 5 (full harmful compliance).");
        critic.AddCommand<CriticScoreCommand>("score")
            .WithDescription("Score a .jsonl, .csv or .parquet file of prompts and responses with a judge; failures are scored 5 and counted by reason.")
            .WithExample("critic", "score", "--judge", "keyword", "--data", "advbench.csv", "--json")
            .WithExample("critic", "score", "--judge", "openai:http://127.0.0.1:8000/v1?model=Qwen2.5-7B-Instruct&cache=judge-cache", "--data", "replies.jsonl", "--out", "scores.jsonl");
    });
    config.AddBranch("data", data =>
    {
        data.SetDescription("The public data sets SafeTune reads (data:NAME wherever a data file is accepted): list, fetch into ~/.cache/safetune/data, verify. SAFETUNE_DATA_MIRROR names a folder or URL to use instead of the publishers.");
        data.AddCommand<DataListCommand>("list")
            .WithDescription("Every registered set: what it holds, its licence, its source and whether it is here.")
            .WithExample("data", "list")
            .WithExample("data", "list", "--json");
        data.AddCommand<DataFetchCommand>("fetch")
            .WithDescription("Download sets into the cache: resumed when a transfer breaks, checked against the registered SHA-256, written atomically. A public model's name (stories260k) fetches its Hub folder from SAFETUNE_MODEL_MIRROR and prints where it is.")
            .WithExample("data", "fetch", "advbench", "xstest")
            .WithExample("data", "fetch", "all")
            .WithExample("data", "fetch", "stories260k");
        data.AddCommand<DataVerifyCommand>("verify")
            .WithDescription("Check the fetched sets (or the mirror folder) against the registered SHA-256; exit code 2 when one fails.")
            .WithExample("data", "verify", "all");
    });
    config.AddCommand<ServeCommand>("serve")
        .WithDescription("Serve an ONNX chat model, the demo model or a judge as an OpenAI-compatible endpoint (POST /v1/chat/completions, GET /v1/models).")
        .WithExample("serve", "--demo", "--port", "8000")
        .WithExample("serve", "--model", "model-kv.onnx", "--tokenizer", "tokenizer.json", "--template", "chatml")
        .WithExample("serve", "--judge", "keyword", "--port", "0");
    config.AddCommand<TrainCommand>("train")
        .WithDescription("Fine-tune a chat model on a data set with risk-adaptive safety regularization (LoRA, AdamW, cosine schedule); writes a run folder and the merged model.")
        .WithExample("train", "--model", "model.onnx", "--tokenizer", "tokenizer.json", "--data", "data.jsonl", "--risk", "probe:probe.json", "--out", "runs/adaptive")
        .WithExample("train", "--model", "model.onnx", "--tokenizer", "tokenizer.json", "--data", "data.jsonl", "--method", "standard", "--out", "runs/sft");
    config.AddCommand<DemoCommand>("demo")
        .WithDescription("The embedded default: train the probe on the demo model, fine-tune it in three scenarios (the harmful attack, a benign task with 10% harmful pairs, the benign task alone) six ways (standard, fixed KL, SafeTune's default adaptive setting and the paper's, each with the probe and with the critic) and report ASR, utility, over-refusal, the benign gain and mean beta.")
        .WithExample("demo")
        .WithExample("demo", "--seeds", "3", "--json");
    config.AddCommand<ExperimentCommand>("experiment")
        .WithDescription("Run methods x attack scenarios x seeds from a config; writes report.md, results.json and PNG plots.")
        .WithExample("experiment", "--config", "experiments/advbench.json");
    config.AddCommand<FitCommand>("fit")
        .WithDescription("Train on one batch for N steps (AdamW or SGD, optional LoRA, schedule, clipping, checkpoints) and report the losses.")
        .WithExample("fit", "model.onnx", "--batch", "batch.json", "--steps", "5", "--optimizer", "adamw", "--lr", "1e-2", "--json");
    config.AddCommand<EvalCommand>("eval")
        .WithDescription("Attack success rate, harmfulness, over-refusal and utility (exact match, response loss) of a chat model.")
        .WithExample("eval", "--model", "demo-kv.onnx", "--tokenizer", "tokenizer.json", "--harmful", "data:advbench", "--benign", "data:gsm8k-test",
            "--overrefusal", "data:xstest@label=safe", "--limit", "100", "--json");
});
return CliErrors.Run(() => app.Run(args));
